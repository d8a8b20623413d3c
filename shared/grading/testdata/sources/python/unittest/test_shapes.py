import unittest


class TestShapes(unittest.TestCase):
    def test_square_area(self):
        self.assertEqual(4 * 4, 16)

    def test_circle_area(self):
        self.assertAlmostEqual(3.14159 * 2 * 2, 12.0, places=2)

    @unittest.skip("triangles are not implemented")
    def test_triangle_area(self):
        pass

    def test_raises(self):
        raise ValueError("bad shape")

    @unittest.expectedFailure
    def test_known_bug(self):
        self.assertEqual(1, 2)

    def test_subtests(self):
        for i in range(3):
            with self.subTest(i=i):
                self.assertLess(i, 2)


class TestOutput(unittest.TestCase):
    def test_prints(self):
        print("hello from unittest")
        import sys
        print("to stderr", file=sys.stderr)


if __name__ == "__main__":
    unittest.main()
