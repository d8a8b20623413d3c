const { add } = require('./calc');

describe('add', () => {
  test('adds positive numbers', () => { expect(add(2, 3)).toBe(5); });
  test('is wrong on purpose', () => { expect(add(2, 2)).toBe(5); });
  test.skip('handles bigints', () => { expect(add(1n, 2n)).toBe(3n); });
  describe('with zero', () => {
    test('is the identity', () => { expect(add(7, 0)).toBe(7); });
  });
});

test('top-level test', () => { expect(true).toBe(true); });
