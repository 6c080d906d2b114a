import XCTest

@testable import Kernels

/// BufferPool: size classes, reuse of freed blocks, the limit on what it holds.
final class BufferPoolTests: XCTestCase {
    func testSizeClassesCoverTheRequestWithinAnEighth() {
        for bytes in [1 << 20, (1 << 20) + 1, 3_000_000, 5 << 20, 123_456_789, 1 << 30] {
            let size = BufferPool.sizeClass(bytes)
            XCTAssertGreaterThanOrEqual(size, bytes)
            XCTAssertLessThanOrEqual(Double(size), Double(bytes) * 1.125 + 4096, "\(bytes)")
            XCTAssertEqual(size % 4096, 0)
        }
        // Requests within the same eighth share a class.
        XCTAssertEqual(BufferPool.sizeClass(4_000_000), BufferPool.sizeClass(4_100_000))
    }

    func testFreedBlocksAreReusedAndTheLimitHolds() {
        let pool = BufferPool(limitBytes: 8 << 20)
        let a = pool.allocate(bytes: 3 << 20)
        a.storeBytes(of: 42, as: Int.self)
        pool.release(a, bytes: 3 << 20)
        XCTAssertEqual(pool.heldBytes, BufferPool.sizeClass(3 << 20))
        let b = pool.allocate(bytes: (3 << 20) - 100)    // same class: the same block comes back
        XCTAssertEqual(a, b)
        XCTAssertEqual(pool.heldBytes, 0)
        pool.release(b, bytes: (3 << 20) - 100)

        // Three more 3 MiB blocks: the pool keeps at most 8 MiB, evicting the oldest.
        let blocks = (0..<3).map { _ in pool.allocate(bytes: 3 << 20) }
        for block in blocks { pool.release(block, bytes: 3 << 20) }
        XCTAssertLessThanOrEqual(pool.heldBytes, 8 << 20)
        XCTAssertEqual(pool.heldBytes, 2 * BufferPool.sizeClass(3 << 20))

        // A block larger than the limit is never kept; small ones go to malloc.
        let big = pool.allocate(bytes: 9 << 20)
        pool.release(big, bytes: 9 << 20)
        let small = pool.allocate(bytes: 1000)
        pool.release(small, bytes: 1000)
        XCTAssertEqual(pool.heldBytes, 2 * BufferPool.sizeClass(3 << 20))
        pool.drain()
        XCTAssertEqual(pool.heldBytes, 0)
    }

    /// With no idle block of its class, a request takes the smallest idle block of up to twice the
    /// class, which goes back to its own class when released; a block over twice the class is not lent.
    func testLargerIdleBlocksAreLent() {
        let pool = BufferPool(limitBytes: 64 << 20)
        let big = pool.allocate(bytes: 6 << 20), bigger = pool.allocate(bytes: 9 << 20)
        pool.release(bigger, bytes: 9 << 20)
        pool.release(big, bytes: 6 << 20)
        let lent = pool.allocate(bytes: 4 << 20)     // 6 MiB is the smallest class within 2x of 4 MiB
        XCTAssertEqual(lent, big)
        XCTAssertEqual(pool.heldBytes, BufferPool.sizeClass(9 << 20))
        UnsafeMutableRawPointer(lent).initializeMemory(as: UInt8.self, repeating: 1, count: 6 << 20)
        pool.release(lent, bytes: 4 << 20)
        XCTAssertEqual(pool.heldBytes, BufferPool.sizeClass(9 << 20) + BufferPool.sizeClass(6 << 20),
                       "the lent block went back as the 6 MiB block it is")
        XCTAssertEqual(pool.allocate(bytes: 6 << 20), big, "and serves its own class again")
        let fresh = pool.allocate(bytes: 2 << 20)    // 9 MiB is more than twice 2 MiB
        XCTAssertNotEqual(fresh, bigger)
        XCTAssertEqual(pool.heldBytes, BufferPool.sizeClass(9 << 20))
        pool.release(fresh, bytes: 2 << 20)
        pool.release(big, bytes: 6 << 20)
        pool.drain()
        XCTAssertEqual(pool.heldBytes, 0)
    }

    func testLimitFollowsTheResidentSizeWhenAsked() {
        #if os(Linux)
        let resident = try? XCTUnwrap(BufferPool.residentBytes())
        XCTAssertGreaterThan(resident ?? 0, 4 << 20, "the test process holds more than 4 MiB")
        // Divisor 1: the limit becomes the whole resident size once a block has been mapped.
        let growing = BufferPool(limitBytes: 1 << 20, residentDivisor: 1)
        XCTAssertEqual(growing.limitBytes, 1 << 20)
        let block = growing.allocate(bytes: 2 << 20)
        XCTAssertGreaterThan(growing.limitBytes, 4 << 20)
        growing.release(block, bytes: 2 << 20)
        XCTAssertEqual(growing.heldBytes, BufferPool.sizeClass(2 << 20), "kept under the grown limit")
        growing.drain()
        // Divisor 0: the fixed limit stays, and a block over it is not kept.
        let fixed = BufferPool(limitBytes: 1 << 20)
        let other = fixed.allocate(bytes: 2 << 20)
        XCTAssertEqual(fixed.limitBytes, 1 << 20)
        fixed.release(other, bytes: 2 << 20)
        XCTAssertEqual(fixed.heldBytes, 0)
        #endif
    }

    func testTensorsRecycleTheirStorage() {
        let count = 2 << 20    // 8 MiB of floats
        var pointer: UnsafeMutablePointer<Float>?
        do {
            let t = Tensor(shape: [count], repeating: 1)
            pointer = t.storage.pointer
        }
        let again = Tensor(shape: [count], repeating: 2)
        if BufferPool.shared.limitBytes >= BufferPool.sizeClass(count * 4) {
            XCTAssertEqual(again.storage.pointer, pointer)
        }
        XCTAssertEqual(again.scalars[count - 1], 2)
    }
}
