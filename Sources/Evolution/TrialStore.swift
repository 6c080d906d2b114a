// The SQLite store of an evolution run (`<run-dir>/evolve.sqlite`, through GRDB): the run's settings,
// every trial (generation, candidate, genome, concrete parameters, fitness, per-prompt scores, timings)
// and the optimiser's state after each generation. Every trial is committed on its own as soon as it
// finishes, and the state after a generation in one transaction with the generation's end, so a run
// killed at any instant (SIGKILL included) resumes without losing or redoing a finished evaluation.

import Foundation
import GRDB

public struct TrialRecord: Codable, Equatable, FetchableRecord, PersistableRecord {
    public static let databaseTableName = "trial"
    public var generation: Int
    public var candidate: Int
    public var genome: String        // JSON array of the genotype
    public var parameters: String    // JSON object: parameter name -> concrete value
    public var fitness: Double
    public var scores: String        // JSON object: prompt/seed key -> score
    public var seconds: Double
    public var finishedAt: Date
}

public struct GenerationRecord: Codable, Equatable, FetchableRecord, PersistableRecord {
    public static let databaseTableName = "generation"
    public var generation: Int
    public var optimizerState: String   // JSON of the CMAES value after this generation's tell
    public var bestFitness: Double      // best of this generation
    public var meanFitness: Double
    public var bestSoFar: Double
    public var seconds: Double
    public var finishedAt: Date
}

public final class TrialStore {
    public let url: URL
    let queue: DatabaseQueue

    public init(url: URL) throws {
        self.url = url
        do {
            queue = try DatabaseQueue(path: url.path)
            try Self.migrator.migrate(queue)
        } catch {
            throw EvolutionError.store(path: url.path, message: "\(error)")
        }
    }

    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.create(table: "run") { t in
                t.primaryKey("id", .integer)
                t.column("recipe", .text).notNull()
                t.column("settings", .text).notNull()
                t.column("createdAt", .datetime).notNull()
            }
            try db.create(table: "trial") { t in
                t.column("generation", .integer).notNull()
                t.column("candidate", .integer).notNull()
                t.column("genome", .text).notNull()
                t.column("parameters", .text).notNull()
                t.column("fitness", .double).notNull()
                t.column("scores", .text).notNull()
                t.column("seconds", .double).notNull()
                t.column("finishedAt", .datetime).notNull()
                t.primaryKey(["generation", "candidate"])
            }
            try db.create(table: "generation") { t in
                t.primaryKey("generation", .integer)
                t.column("optimizerState", .text).notNull()
                t.column("bestFitness", .double).notNull()
                t.column("meanFitness", .double).notNull()
                t.column("bestSoFar", .double).notNull()
                t.column("seconds", .double).notNull()
                t.column("finishedAt", .datetime).notNull()
            }
        }
        return migrator
    }

    /// The recipe and settings the run was started with, or nil for a new store.
    public func runInfo() throws -> (recipe: String, settings: String)? {
        try wrap {
            try queue.read { db in
                try Row.fetchOne(db, sql: "SELECT recipe, settings FROM run WHERE id = 1").map { ($0["recipe"], $0["settings"]) }
            }
        }
    }

    public func startRun(recipe: String, settings: String) throws {
        try wrap {
            try queue.write { db in
                try db.execute(sql: "INSERT INTO run (id, recipe, settings, createdAt) VALUES (1, ?, ?, ?)",
                               arguments: [recipe, settings, Date()])
            }
        }
    }

    public func save(_ trial: TrialRecord) throws {
        try wrap { try queue.write { db in try trial.insert(db, onConflict: .replace) } }
    }

    public func trials(generation: Int) throws -> [TrialRecord] {
        try wrap {
            try queue.read { db in
                try TrialRecord.filter(Column("generation") == generation).order(Column("candidate")).fetchAll(db)
            }
        }
    }

    public func allTrials() throws -> [TrialRecord] {
        try wrap { try queue.read { db in try TrialRecord.order(Column("generation"), Column("candidate")).fetchAll(db) } }
    }

    public func save(_ generation: GenerationRecord) throws {
        try wrap { try queue.write { db in try generation.insert(db, onConflict: .replace) } }
    }

    public func generations() throws -> [GenerationRecord] {
        try wrap { try queue.read { db in try GenerationRecord.order(Column("generation")).fetchAll(db) } }
    }

    public func lastGeneration() throws -> GenerationRecord? {
        try wrap { try queue.read { db in try GenerationRecord.order(Column("generation").desc).fetchOne(db) } }
    }

    public func bestTrial() throws -> TrialRecord? {
        try wrap { try queue.read { db in try TrialRecord.order(Column("fitness").desc).fetchOne(db) } }
    }

    private func wrap<T>(_ body: () throws -> T) throws -> T {
        do { return try body() } catch let error as EvolutionError { throw error } catch {
            throw EvolutionError.store(path: url.path, message: "\(error)")
        }
    }
}
