//! Prints a syntax tree back as source text (used by the round-trip property test).
