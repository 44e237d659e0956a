//! The seeds' items for the benchmarks: strings shaped like UUIDs, and their reversal.

/// `count` strings shaped like UUIDs, from a fixed xorshift sequence (made before any clock
/// starts).
pub fn uuids(count: u64) -> Vec<String> {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    (0..count)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            format!(
                "{:08x}-{:04x}-{:04x}-{:016x}",
                state >> 32,
                (state >> 16) & 0xffff,
                state & 0xffff,
                state.rotate_left(17)
            )
        })
        .collect()
}

/// What the seeds' `rev` does.
pub fn reverse(s: String) -> String {
    s.chars().rev().collect()
}
