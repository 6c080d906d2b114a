import Foundation
import XCTest

@testable import Evolution

/// The process pool with a worker written in POSIX shell: it answers each request line with a result
/// whose fitness is the candidate number (or dies, on request), which is all the pool's mechanics need.
final class ProcessPoolEvaluatorTests: XCTestCase {
    static let worker = """
        while IFS= read -r line; do
          g=$(printf '%s' "$line" | sed -E 's/.*"generation":([0-9]+).*/\\1/')
          c=$(printf '%s' "$line" | sed -E 's/.*"candidate":([0-9]+).*/\\1/')
          if [ "$c" = "$DIE_ON" ]; then exit 3; fi
          sleep 0.05
          printf '{"generation":%s,"candidate":%s,"fitness":%s.5,"scores":{"p/1":%s},"seconds":0.05}\\n' "$g" "$c" "$c" "$c"
        done
        """

    func requests(_ n: Int) -> [CandidateRequest] {
        (0..<n).map { CandidateRequest(generation: 2, candidate: $0, parameters: ["w": Double($0) / 10]) }
    }

    func testEveryRequestAnsweredOnceAcrossWorkers() throws {
        let pool = try ProcessPoolEvaluator(command: ["/bin/sh", "-c", Self.worker], workers: 3)
        var results: [CandidateResult] = []
        let started = Date()
        try pool.evaluate(requests(12)) { results.append($0) }
        let elapsed = Date().timeIntervalSince(started)
        XCTAssertEqual(results.map(\.candidate).sorted(), Array(0..<12))
        for r in results {
            XCTAssertEqual(r.generation, 2)
            XCTAssertEqual(r.fitness, Double(r.candidate) + 0.5)
            XCTAssertEqual(r.scores["p/1"], Double(r.candidate))
        }
        // Workers are reused by the next generation.
        var second: [Int] = []
        try pool.evaluate(requests(4)) { second.append($0.candidate) }
        XCTAssertEqual(second.sorted(), [0, 1, 2, 3])
        pool.shutdown()
        print("12 candidates on 3 shell workers in \(elapsed) s")
    }

    func testWorkerThatDiesIsAnError() throws {
        setenv("DIE_ON", "5", 1)
        defer { unsetenv("DIE_ON") }
        let pool = try ProcessPoolEvaluator(command: ["/bin/sh", "-c", Self.worker], workers: 2)
        var results: [Int] = []
        XCTAssertThrowsError(try pool.evaluate(requests(10)) { results.append($0.candidate) }) {
            guard case .worker(_, let message) = $0 as? EvolutionError else { return XCTFail("\($0)") }
            XCTAssertEqual(message, "exited with status 3 before answering")
        }
        XCTAssertFalse(results.contains(5))
        XCTAssertGreaterThanOrEqual(results.count, 4, "results finished before the failure are still reported")
    }

    func testBadCommandsAreRefused() {
        XCTAssertThrowsError(try ProcessPoolEvaluator(command: ["evomerge", "worker"], workers: 2))
        XCTAssertThrowsError(try ProcessPoolEvaluator(command: ["/bin/sh"], workers: 0))
        let pool = try! ProcessPoolEvaluator(command: ["/nonexistent/worker"], workers: 1)
        XCTAssertThrowsError(try pool.evaluate(requests(1)) { _ in }) {
            guard case .worker(0, let message) = $0 as? EvolutionError else { return XCTFail("\($0)") }
            XCTAssertTrue(message.hasPrefix("cannot start /nonexistent/worker"), message)
        }
    }
}
