// The results store opened by several connections at once (an eval and a report, two evals): a new
// store is migrated once with no "duplicate column" failure, and a writer waits for a reader's lock
// instead of failing with "database is locked".

import Foundation
import GRDB
import XCTest

@testable import Evaluation

final class ResultsStoreConcurrencyTests: XCTestCase {
    var directory: URL!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("store-concurrency-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: directory) }

    func testANewStoreOpenedAtOnceIsMigratedOnce() throws {
        for round in 0..<20 {
            let url = directory.appendingPathComponent("r\(round).sqlite")
            let errors = ErrorList()
            DispatchQueue.concurrentPerform(iterations: 6) { _ in
                do { _ = try ResultsStore(url: url) } catch { errors.append(error) }
            }
            XCTAssertEqual(errors.all.map { "\($0)" }, [], "round \(round)")
            let queue = try DatabaseQueue(path: url.path)
            let applied = try queue.read { db in try String.fetchAll(db, sql: "SELECT identifier FROM grdb_migrations ORDER BY identifier") }
            XCTAssertEqual(applied, ["v1-images", "v2-suite-prompt-scorer"])
        }
    }

    func testAWriterWaitsForAReader() throws {
        let url = directory.appendingPathComponent("r.sqlite")
        let store = try ResultsStore(url: url)
        let reader = try DatabaseQueue(path: url.path)
        let started = DispatchSemaphore(value: 0)
        let done = DispatchSemaphore(value: 0)
        // A reader holds a shared lock for 0.3 s (as `evomerge report` reading a large store would).
        DispatchQueue.global().async {
            try? reader.read { db in
                _ = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM image")
                started.signal()
                Thread.sleep(forTimeInterval: 0.3)
            }
            done.signal()
        }
        started.wait()
        XCTAssertTrue(try store.insert(ImageResult(model: "m", modelHash: "h", suite: "s", promptId: "p", prompt: "富士山", tags: [],
                                                   seed: 1, settings: "{}", scorer: "s", score: 0.5, seconds: 1, imagePath: "/x.png")))
        done.wait()
        XCTAssertEqual(try store.all().count, 1)
    }
}

private final class ErrorList: @unchecked Sendable {
    private let lock = NSLock()
    private var errors: [Error] = []
    func append(_ error: Error) { lock.lock(); errors.append(error); lock.unlock() }
    var all: [Error] { lock.lock(); defer { lock.unlock() }; return errors }
}
