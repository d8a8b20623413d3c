//go:build !race

package functions

const raceBuild = false
