// Peak resident memory (VmHWM in /proc/PID/status) of this process or of a child, in kB.

import Foundation

/// VmHWM of `pid` ("self" for this process) in kB, or nil when unreadable. The field is
/// "VmHWM:<tab><padding>N kB"; from 10 GB up N fills the padding, so split on tabs and spaces.
func peakResidentKilobytes(pid: String = "self") -> Int? {
    guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
          let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }) else { return nil }
    let fields = line.dropFirst("VmHWM:".count).split(whereSeparator: { $0 == " " || $0 == "\t" })
    return fields.first.flatMap { Int($0) }
}

/// Peak resident memory of this process in MB.
func peakRSSMegabytes() -> Double {
    Double(peakResidentKilobytes() ?? 0) / 1024
}
