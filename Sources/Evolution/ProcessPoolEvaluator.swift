// Evaluates candidates in parallel in long-lived worker processes (`evomerge worker ...`), so each
// worker loads its models once. The protocol is JSON lines: the pool writes one `CandidateRequest` per
// line to a worker's standard input and reads one `CandidateResult` per line from its standard output;
// a worker handles one request at a time. Anything a worker prints on standard error is passed through.
// A worker that exits or answers garbage fails the evaluation with its exit status named; the results
// already reported stay reported (the search has stored them).

import Foundation

public final class ProcessPoolEvaluator: CandidateEvaluator {
    public let command: [String]
    public let workerCount: Int

    final class Worker {
        let process = Process()
        let input = Pipe()
        let output = Pipe()
        var buffer = Data()
        let index: Int

        init(index: Int, command: [String]) throws {
            self.index = index
            process.executableURL = URL(fileURLWithPath: command[0])
            process.arguments = Array(command.dropFirst())
            process.standardInput = input
            process.standardOutput = output
            process.standardError = FileHandle.standardError
            do {
                try process.run()
            } catch {
                throw EvolutionError.worker(index: index, message: "cannot start \(command[0]): \(error.localizedDescription)")
            }
        }

        func send(_ request: CandidateRequest) throws {
            var line = try JSONEncoder().encode(request)
            line.append(0x0A)
            do {
                try input.fileHandleForWriting.write(contentsOf: line)
            } catch {
                throw EvolutionError.worker(index: index, message: "cannot send a request: \(error.localizedDescription)")
            }
        }

        /// Blocks until the worker prints one full line, and decodes it.
        func receive() throws -> CandidateResult {
            while true {
                if let newline = buffer.firstIndex(of: 0x0A) {
                    let line = buffer[buffer.startIndex..<newline]
                    buffer = Data(buffer[buffer.index(after: newline)...])
                    do {
                        return try JSONDecoder().decode(CandidateResult.self, from: line)
                    } catch {
                        let text = String(decoding: line.prefix(200), as: UTF8.self)
                        throw EvolutionError.worker(index: index, message: "answered with a line that is not a result: \(text)")
                    }
                }
                let chunk = output.fileHandleForReading.availableData
                if chunk.isEmpty {
                    process.waitUntilExit()
                    throw EvolutionError.worker(index: index, message: "exited with status \(process.terminationStatus) before answering")
                }
                buffer.append(chunk)
            }
        }

        func stop() {
            try? input.fileHandleForWriting.close()
            if process.isRunning {
                // Give the worker a moment to exit on end of input, then insist.
                let deadline = Date().addingTimeInterval(2)
                while process.isRunning && Date() < deadline { usleep(10_000) }
                if process.isRunning { process.terminate() }
            }
            process.waitUntilExit()
        }
    }

    var workers: [Worker] = []

    /// `command`: the worker's executable (absolute path) and arguments.
    public init(command: [String], workers: Int) throws {
        guard let first = command.first, first.hasPrefix("/") else {
            throw EvolutionError.invalidParameter("the worker command needs an absolute executable path, got \(command)")
        }
        guard workers >= 1 else { throw EvolutionError.invalidParameter("--workers must be at least 1, got \(workers)") }
        self.command = command
        self.workerCount = workers
    }

    deinit { shutdown() }

    /// Stops every worker (they also stop when the pool is released).
    public func shutdown() {
        for worker in workers { worker.stop() }
        workers = []
    }

    public func evaluate(_ requests: [CandidateRequest], onResult: (CandidateResult) throws -> Void) throws {
        if workers.isEmpty {
            workers = try (0..<workerCount).map { try Worker(index: $0, command: command) }
        }
        // Each worker runs a loop on its own thread: take the next request, send it, wait for the answer,
        // hand the answer to the caller's thread through shared state guarded by a condition.
        final class Shared: @unchecked Sendable {
            let condition = NSCondition()
            var next = 0
            var finished: [CandidateResult] = []
            var failure: Error?
            var running: Int
            init(running: Int) { self.running = running }
        }
        let shared = Shared(running: workers.count)
        for worker in workers {
            Thread.detachNewThread {
                while true {
                    shared.condition.lock()
                    if shared.failure != nil || shared.next >= requests.count {
                        shared.running -= 1
                        shared.condition.broadcast()
                        shared.condition.unlock()
                        return
                    }
                    let request = requests[shared.next]
                    shared.next += 1
                    shared.condition.unlock()
                    do {
                        try worker.send(request)
                        let result = try worker.receive()
                        shared.condition.lock()
                        shared.finished.append(result)
                    } catch {
                        shared.condition.lock()
                        if shared.failure == nil { shared.failure = error }
                        shared.running -= 1
                        shared.condition.broadcast()
                        shared.condition.unlock()
                        return
                    }
                    shared.condition.broadcast()
                    shared.condition.unlock()
                }
            }
        }
        // Report results on this thread as they arrive.
        shared.condition.lock()
        while true {
            while !shared.finished.isEmpty {
                let result = shared.finished.removeFirst()
                shared.condition.unlock()
                var callerError: Error?
                do { try onResult(result) } catch { callerError = error }
                shared.condition.lock()
                if let callerError, shared.failure == nil { shared.failure = callerError }
            }
            if shared.running == 0 { break }
            shared.condition.wait()
        }
        let failure = shared.failure
        shared.condition.unlock()
        if let failure {
            shutdown()
            throw failure
        }
    }
}
