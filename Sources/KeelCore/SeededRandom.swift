/// A fast, seeded, reproducible random generator (xoshiro256**, seeded through SplitMix64).
/// The only source of randomness in the Raft core and the simulators: the same seed gives the same
/// sequence on every machine, so a failing simulation replays exactly.
public struct SeededRandom: RandomNumberGenerator, Sendable {
    private var s0: UInt64, s1: UInt64, s2: UInt64, s3: UInt64
    /// The seed this generator was made from, for printing a replay command.
    public let seed: UInt64

    public init(seed: UInt64) {
        self.seed = seed
        var splitMixState = seed
        func splitMix() -> UInt64 {
            splitMixState &+= 0x9E37_79B9_7F4A_7C15
            var z = splitMixState
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        s0 = splitMix(); s1 = splitMix(); s2 = splitMix(); s3 = splitMix()
    }

    @inlinable static func rotateLeft(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }

    public mutating func next() -> UInt64 {
        let result = Self.rotateLeft(s1 &* 5, 7) &* 9
        let t = s1 << 17
        s2 ^= s0; s3 ^= s1; s1 ^= s2; s0 ^= s3
        s2 ^= t
        s3 = Self.rotateLeft(s3, 45)
        return result
    }

    /// True with probability `chance` (0...1).
    public mutating func chance(_ probability: Double) -> Bool {
        probability > 0 && Double(next() >> 11) * 0x1.0p-53 < probability
    }

    /// A uniformly distributed integer in `range`.
    public mutating func integer(in range: ClosedRange<Int64>) -> Int64 { Int64.random(in: range, using: &self) }

    /// An independent generator derived from this one (for giving each component its own stream).
    public mutating func fork() -> SeededRandom { SeededRandom(seed: next()) }
}
