package proxy

import (
	"fmt"
	"log/slog"
)

// slogPrinter adapts slog to promhttp's Println-style error log.
type slogPrinter struct{ log *slog.Logger }

func (p slogPrinter) Println(v ...any) { p.log.Error(fmt.Sprint(v...)) }
