// The worker's side of ProcessPoolEvaluator's protocol: read one `CandidateRequest` per line, answer one
// `CandidateResult` per line, until the input ends (the pool closed it, or the search process died).
// Standard output carries nothing else; messages go to standard error. A request that cannot be
// evaluated ends the worker with its error on standard error, which the pool reports.

import Foundation

public enum WorkerLoop {
    /// Runs until `readLine` returns nil; returns the number of requests answered.
    @discardableResult
    public static func run(readLine: () -> String? = { Swift.readLine(strippingNewline: true) },
                           write: (String) -> Void = { line in
                               FileHandle.standardOutput.write(Data((line + "\n").utf8))
                           },
                           evaluate: (CandidateRequest) throws -> CandidateResult) throws -> Int {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        var answered = 0
        while let line = readLine() {
            if line.trimmingCharacters(in: .whitespaces).isEmpty { continue }
            let request: CandidateRequest
            do {
                request = try JSONDecoder().decode(CandidateRequest.self, from: Data(line.utf8))
            } catch {
                throw EvolutionError.invalidParameter("worker: a request line is not a candidate request: \(line.prefix(200))")
            }
            let result = try evaluate(request)
            write(String(decoding: try encoder.encode(result), as: UTF8.self))
            answered += 1
        }
        return answered
    }
}

/// An evaluator that reports each result, after the search has stored it, to an observer (progress).
public struct ObservedEvaluator: CandidateEvaluator {
    let inner: CandidateEvaluator
    let observer: (CandidateResult) -> Void

    public init(_ inner: CandidateEvaluator, observer: @escaping (CandidateResult) -> Void) {
        self.inner = inner
        self.observer = observer
    }

    public func evaluate(_ requests: [CandidateRequest], onResult: (CandidateResult) throws -> Void) throws {
        try inner.evaluate(requests) { result in
            try onResult(result)
            observer(result)
        }
    }
}
