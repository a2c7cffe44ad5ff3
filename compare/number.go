package compare

import (
	"bytes"
	"strconv"
)

// numbersEqual compares two JSON number literals by exact decimal value:
// 1 == 1.0 == 1e0 == 0.1e1, -0 == 0, and 12345678901234567890 differs
// from 12345678901234567891 although both round to the same float64.
// It does not allocate unless an exponent has more than 18 digits, and
// then in time linear in the literals' length.
func numbersEqual(a, b []byte) bool {
	if bytes.Equal(a, b) {
		return true
	}
	da, db := parseDecimal(a), parseDecimal(b)
	if da.zero() || db.zero() {
		return da.zero() && db.zero()
	}
	if da.neg != db.neg || da.len() != db.len() {
		return false
	}
	for i := range da.len() {
		if da.digit(i) != db.digit(i) {
			return false
		}
	}
	if da.expBig == nil && db.expBig == nil {
		return da.exp == db.exp
	}
	na, ma := da.expDigits()
	nb, mb := db.expDigits()
	return na == nb && bytes.Equal(ma, mb)
}

// decimal is a number literal read as 0.d₁d₂…dₙ × 10^exp with d₁ ≠ 0 and
// dₙ ≠ 0. The significant digits are hi followed by lo, two sub-slices of
// the literal on either side of the decimal point, so nothing is copied.
type decimal struct {
	neg    bool
	hi, lo []byte
	exp    int64
	// expBig holds the literal's exponent digits when they do not fit in
	// int64 arithmetic; exp then holds only the adjustment from the point.
	expBig []byte
	expNeg bool
}

func (d decimal) zero() bool { return len(d.hi)+len(d.lo) == 0 }
func (d decimal) len() int   { return len(d.hi) + len(d.lo) }
func (d decimal) digit(i int) byte {
	if i < len(d.hi) {
		return d.hi[i]
	}
	return d.lo[i-len(d.hi)]
}

// expDigits returns the sign and the decimal digits (no leading zero) of
// d's whole exponent. A long exponent is added to in decimal, not
// converted: big.Int's decimal parsing takes time quadratic in the digits
// (a 1 MiB exponent took seconds).
func (d decimal) expDigits() (neg bool, mag []byte) {
	if d.expBig == nil {
		e := d.exp
		if neg = e < 0; neg {
			e = -e
		}
		return neg, strconv.AppendInt(nil, e, 10)
	}
	// (±E) + exp, where E has 19 digits or more and |exp| is at most the
	// literal's length: the sign is E's, the magnitude E ± exp.
	s := d.exp
	if d.expNeg {
		s = -s
	}
	return d.expNeg, addSmall(d.expBig, s)
}

// addSmall returns the decimal digits of e + s, for digits e without a
// leading zero and |s| < e.
func addSmall(e []byte, s int64) []byte {
	out := make([]byte, len(e)+1)
	out[0] = '0'
	copy(out[1:], e)
	sub := s < 0
	u := uint64(s)
	if sub {
		u = uint64(-s)
	}
	carry := 0 // a carry when adding, a borrow when subtracting
	for i := len(out) - 1; i >= 0 && (u > 0 || carry != 0); i-- {
		dig, k := int(out[i]-'0'), int(u%10)
		u /= 10
		if sub {
			dig -= k + carry
			carry = 0
			if dig < 0 {
				dig, carry = dig+10, 1
			}
		} else {
			dig += k + carry
			carry = dig / 10
			dig %= 10
		}
		out[i] = byte('0' + dig)
	}
	i := 0
	for i < len(out)-1 && out[i] == '0' {
		i++
	}
	return out[i:]
}

// parseDecimal reads a literal already validated by scanNumber.
func parseDecimal(lit []byte) decimal {
	var d decimal
	if lit[0] == '-' {
		d.neg = true
		lit = lit[1:]
	}
	intPart := lit
	var frac, expo []byte
	if i := bytes.IndexAny(lit, "eE"); i >= 0 {
		intPart, expo = lit[:i], lit[i+1:]
	}
	if i := bytes.IndexByte(intPart, '.'); i >= 0 {
		intPart, frac = intPart[:i], intPart[i+1:]
	}

	// The point sits after intPart: value = 0.(intPart frac) × 10^len(intPart).
	// Stripping leading zeros moves the first significant digit left.
	pointExp := int64(len(intPart))
	for len(intPart) > 0 && intPart[0] == '0' {
		intPart = intPart[1:]
		pointExp--
	}
	if len(intPart) == 0 {
		for len(frac) > 0 && frac[0] == '0' {
			frac = frac[1:]
			pointExp--
		}
	}
	frac = bytes.TrimRight(frac, "0")
	if len(frac) == 0 {
		intPart = bytes.TrimRight(intPart, "0")
	}
	d.hi, d.lo = intPart, frac
	d.exp = pointExp

	if len(expo) > 0 {
		neg := expo[0] == '-'
		if expo[0] == '-' || expo[0] == '+' {
			expo = expo[1:]
		}
		expo = bytes.TrimLeft(expo, "0")
		if len(expo) > 18 {
			d.expBig, d.expNeg = expo, neg
			return d
		}
		var e int64
		for _, c := range expo {
			e = e*10 + int64(c-'0')
		}
		if neg {
			e = -e
		}
		d.exp += e
	}
	return d
}
