package broken

func Sub(a, b int) int { return a - b }
