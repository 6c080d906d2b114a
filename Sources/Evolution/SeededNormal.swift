// A small seedable random generator whose whole state is Codable, so that an optimiser saved after a
// generation and loaded again draws exactly the numbers it would have drawn without the break.
//
// Uniforms: xoshiro256** (Blackman and Vigna 2018), seeded through splitmix64.
// Normals: the Box-Muller transform (Box and Muller 1958), both values of each pair used in turn.

import Foundation

public struct SeededNormalGenerator: RandomNumberGenerator, Codable, Equatable {
    var state: [UInt64]
    var spare: Double?

    public init(seed: UInt64) {
        var s = seed
        func splitmix() -> UInt64 {
            s &+= 0x9E37_79B9_7F4A_7C15
            var z = s
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        state = [splitmix(), splitmix(), splitmix(), splitmix()]
        spare = nil
    }

    public mutating func next() -> UInt64 {
        let result = rotl(state[1] &* 5, 7) &* 9
        let t = state[1] << 17
        state[2] ^= state[0]
        state[3] ^= state[1]
        state[1] ^= state[2]
        state[0] ^= state[3]
        state[2] ^= t
        state[3] = rotl(state[3], 45)
        return result
    }

    /// Uniform in [0, 1) with 53 random bits.
    public mutating func nextUniform() -> Double {
        Double(next() >> 11) * 0x1.0p-53
    }

    /// Standard normal deviate.
    public mutating func nextNormal() -> Double {
        if let value = spare {
            spare = nil
            return value
        }
        var u1 = 0.0
        repeat { u1 = nextUniform() } while u1 <= Double.leastNormalMagnitude
        let u2 = nextUniform()
        let radius = (-2 * Foundation.log(u1)).squareRoot()
        let angle = 2 * Double.pi * u2
        spare = radius * sin(angle)
        return radius * cos(angle)
    }

    private func rotl(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }
}
