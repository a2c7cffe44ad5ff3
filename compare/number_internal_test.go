package compare

import (
	"math/big"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
)

// The exponent arithmetic agrees with big.Int's on long exponents near
// carries and borrows (…999 + small, …000 − small) and at random.
func TestExpDigitsAgreesWithBigInt(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	bases := []string{"1" + strings.Repeat("0", 20), strings.Repeat("9", 21), "1" + strings.Repeat("0", 18) + "1", "123456789012345678901234"}
	for range 200 {
		bases = append(bases, strconv.Itoa(1+rng.IntN(9))+strconv.FormatUint(rng.Uint64(), 10)+strconv.FormatUint(rng.Uint64(), 10))
	}
	for _, e := range bases {
		for _, s := range []int64{0, 1, -1, 9, -9, 10, -10, 999, -1000, 123456789, -987654321, 1 << 30, -(1 << 30)} {
			want := new(big.Int)
			want.SetString(e, 10)
			want.Add(want, big.NewInt(s))
			if got := string(addSmall([]byte(e), s)); got != want.String() {
				t.Errorf("%s %+d = %s, want %s", e, s, got, want)
			}
		}
	}
	for _, tc := range []struct {
		a, b string
		eq   bool
	}{
		{"1e1000000000000000000", "10e999999999999999999", true},
		{"1e1000000000000000000", "1e1000000000000000001", false},
		{"1e-1000000000000000000", "0.1e-999999999999999999", true},
		{"1e-1000000000000000000", "1e1000000000000000000", false},
		{"100e999999999999999998", "1e1000000000000000000", true},
		{"1e999999999999999999", "1e0999999999999999999", true},
		{"1e999999999999999999", "10e999999999999999998", true},
		{"-1e10000000000000000000", "-1e10000000000000000000", true},
	} {
		if got := numbersEqual([]byte(tc.a), []byte(tc.b)); got != tc.eq {
			t.Errorf("numbersEqual(%s, %s) = %v, want %v", tc.a, tc.b, got, tc.eq)
		}
		if got := numbersEqual([]byte(tc.b), []byte(tc.a)); got != tc.eq {
			t.Errorf("numbersEqual(%s, %s) = %v, want %v", tc.b, tc.a, got, tc.eq)
		}
	}
}
