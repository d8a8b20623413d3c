package com.example;

import static org.junit.Assert.assertTrue;

import org.junit.Test;

public class FlakyTest {
    private static int runs = 0;

    @Test
    public void passesOnSecondTry() {
        runs++;
        assertTrue("first run fails", runs > 1);
    }

    @Test
    public void alwaysFails() {
        assertTrue("never works", false);
    }
}
