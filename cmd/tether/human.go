package main

import "fmt"

// humanBytes renders n bytes in binary units for tables: 0 B, 512 B,
// 1.5 KiB, 1.0 GiB. --json keeps exact bytes.
func humanBytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
