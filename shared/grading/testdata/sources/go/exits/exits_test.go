package exits

import (
	"fmt"
	"os"
	"testing"
)

func TestFine(t *testing.T) {}

func TestExitsMidway(t *testing.T) {
	fmt.Println("about to leave")
	os.Exit(0)
}
