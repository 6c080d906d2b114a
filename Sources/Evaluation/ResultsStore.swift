// The results store: one SQLite row per evaluated image (through GRDB), so an interrupted evaluation
// resumes where it stopped and reports can be drawn at any time. Each row is written in its own
// transaction; the unique key (model hash, prompt id, seed, sampler settings, scorer) makes a row that is
// already there a no-op instead of a duplicate. Older stores are migrated by GRDB's migrator.

import Foundation
import GRDB

public struct ImageResult: Codable, Equatable, FetchableRecord, MutablePersistableRecord {
    public static let databaseTableName = "image"
    public var id: Int64?
    public var model: String          // display name
    public var modelHash: String      // sha256 (or short hash) identifying the weights
    public var suite: String
    public var promptId: String
    public var prompt: String
    public var tags: String           // JSON array
    public var seed: Int64
    public var settings: String       // JSON object, sorted keys: sampler, steps, cfg, width, height
    public var scorer: String
    public var score: Double
    public var seconds: Double
    public var imagePath: String
    public var createdAt: Date

    public init(model: String, modelHash: String, suite: String, promptId: String, prompt: String, tags: [String],
                seed: UInt64, settings: String, scorer: String, score: Double, seconds: Double, imagePath: String,
                createdAt: Date = Date()) {
        self.id = nil
        self.model = model
        self.modelHash = modelHash
        self.suite = suite
        self.promptId = promptId
        self.prompt = prompt
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        self.tags = String(decoding: (try? encoder.encode(tags)) ?? Data("[]".utf8), as: UTF8.self)
        self.seed = Int64(bitPattern: seed)
        self.settings = settings
        self.scorer = scorer
        self.score = score
        self.seconds = seconds
        self.imagePath = imagePath
        self.createdAt = createdAt
    }

    public var tagList: [String] { (try? JSONDecoder().decode([String].self, from: Data(tags.utf8))) ?? [] }

    public mutating func didInsert(_ inserted: InsertionSuccess) { id = inserted.rowID }
}

/// What identifies one evaluated image: the same key is never evaluated twice.
public struct ImageKey: Hashable {
    public var modelHash: String
    public var promptId: String
    public var seed: UInt64
    public var settings: String
    public var scorer: String

    public init(modelHash: String, promptId: String, seed: UInt64, settings: String, scorer: String) {
        self.modelHash = modelHash
        self.promptId = promptId
        self.seed = seed
        self.settings = settings
        self.scorer = scorer
    }
}

public final class ResultsStore {
    public let url: URL
    let queue: DatabaseQueue

    public init(url: URL) throws {
        self.url = url
        do {
            // Another process (a report, a second eval) may hold the file's lock for a moment: wait for it
            // rather than fail with "database is locked".
            var configuration = Configuration()
            configuration.busyMode = .timeout(30)
            // A new store may name a folder that does not exist yet (as --out may).
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            queue = try DatabaseQueue(path: url.path, configuration: configuration)
        } catch {
            throw EvaluationError.store(path: url.path, message: "\(error)")
        }
        try Self.checkAndMigrate(queue, path: url.path)
    }

    /// Refuses a store written by a newer schema, then applies the migrations it lacks.
    /// GRDB reads the applied migrations before running each in its own transaction, so two processes
    /// opening a new store at once can race (one sees the other's half-made schema, or repeats its
    /// migration, which rolls back): the loser waits a moment and checks again.
    static func checkAndMigrate(_ queue: DatabaseQueue, path: String) throws {
        let migrator = Self.migrator
        var attempt = 0
        while true {
            attempt += 1
            do {
                let applied = try queue.read { db in try migrator.appliedIdentifiers(db) }
                let unknown = applied.subtracting(migrator.migrations).sorted()
                guard unknown.isEmpty else { throw EvaluationError.newerStore(path: path, migrations: unknown) }
                try migrator.migrate(queue)
                return
            } catch let error as EvaluationError {
                throw error
            } catch {
                if attempt == 5 { throw EvaluationError.store(path: path, message: "migration failed: \(error)") }
                usleep(UInt32(20_000 * attempt))
            }
        }
    }

    /// The schema's history. v1 stored images without suite, prompt text, tags or scorer; v2 adds them.
    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1-images") { db in
            try db.create(table: "image") { t in
                t.autoIncrementedPrimaryKey("id")
                t.column("model", .text).notNull()
                t.column("modelHash", .text).notNull()
                t.column("promptId", .text).notNull()
                t.column("seed", .integer).notNull()
                t.column("settings", .text).notNull()
                t.column("score", .double).notNull()
                t.column("seconds", .double).notNull()
                t.column("imagePath", .text).notNull()
                t.column("createdAt", .datetime).notNull()
            }
        }
        migrator.registerMigration("v2-suite-prompt-scorer") { db in
            try db.alter(table: "image") { t in
                t.add(column: "suite", .text).notNull().defaults(to: "")
                t.add(column: "prompt", .text).notNull().defaults(to: "")
                t.add(column: "tags", .text).notNull().defaults(to: "[]")
                t.add(column: "scorer", .text).notNull().defaults(to: "")
            }
            try db.create(index: "image_key", on: "image",
                          columns: ["modelHash", "promptId", "seed", "settings", "scorer"], unique: true)
        }
        return migrator
    }

    /// Stores one result in its own transaction. Returns false (and changes nothing) if a row with the
    /// same key is already there.
    @discardableResult
    public func insert(_ result: ImageResult) throws -> Bool {
        guard result.score.isFinite, result.seconds.isFinite else {
            throw EvaluationError.invalidRow("score \(result.score) / seconds \(result.seconds) of \(result.promptId) seed \(result.seed) is not finite")
        }
        return try wrap {
            try queue.write { db in
                var row = result
                try row.insert(db, onConflict: .ignore)
                return db.changesCount > 0
            }
        }
    }

    public func keys() throws -> Set<ImageKey> {
        try wrap {
            try queue.read { db in
                Set(try Row.fetchAll(db, sql: "SELECT modelHash, promptId, seed, settings, scorer FROM image").map {
                    ImageKey(modelHash: $0["modelHash"], promptId: $0["promptId"],
                             seed: UInt64(bitPattern: $0["seed"] as Int64), settings: $0["settings"], scorer: $0["scorer"])
                })
            }
        }
    }

    public func all() throws -> [ImageResult] {
        try wrap { try queue.read { db in try ImageResult.order(Column("id")).fetchAll(db) } }
    }

    private func wrap<T>(_ body: () throws -> T) throws -> T {
        do { return try body() } catch let error as EvaluationError { throw error } catch {
            throw EvaluationError.store(path: url.path, message: "\(error)")
        }
    }
}
