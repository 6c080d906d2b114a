// swift-tools-version:5.10
// JPGen: Japanese-prompt image generation and evolutionary model merging, on Linux CPUs.
// Module map: ../shared/DESIGN.md. Every numeric target is built with -Ounchecked in release.
import PackageDescription

let fast: [SwiftSetting] = [.unsafeFlags(["-Ounchecked"], .when(configuration: .release))]

let package = Package(
    name: "JPGen",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "jpgen", targets: ["jpgen"]),
        .executable(name: "evomerge", targets: ["evomerge"]),
        .executable(name: "jpbench", targets: ["jpbench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.0.0"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.0.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
    ],
    targets: [
        // System libraries (Debian -dev packages; `make deps` installs them).
        .systemLibrary(name: "CMeCab", path: "Sources/CMeCab"),
        .systemLibrary(name: "COpenBLAS", path: "Sources/COpenBLAS"),
        .systemLibrary(name: "CPNG", path: "Sources/CPNG"),
        // libpng behind setjmp in C, so libpng errors become Swift throws (Swift cannot setjmp).
        .target(name: "CPNGShim", dependencies: ["CPNG"], path: "Sources/CPNGShim",
                linkerSettings: [.linkedLibrary("png16")]),

        // SHA-256 block compression with the x86 SHA extensions (input hashes of merges).
        .target(name: "CSHA256", path: "Sources/CSHA256"),

        // Kernels' hot loops with x86 vector intrinsics, picked at run time (AVX2 + FMA, else portable C).
        .target(name: "CKernels", path: "Sources/CKernels"),

        // Libraries (module map: ../shared/DESIGN.md).
        .target(name: "Kernels", dependencies: ["COpenBLAS", "CKernels"], swiftSettings: fast),
        .target(name: "SafeTensors", dependencies: ["Kernels"], swiftSettings: fast),
        .target(name: "Imaging", dependencies: ["CPNG", "CPNGShim", "Kernels"], swiftSettings: fast),
        .target(name: "Tokenization", dependencies: ["CMeCab"], swiftSettings: fast),
        .target(name: "Networks", dependencies: ["Kernels", "SafeTensors"], swiftSettings: fast),
        .target(name: "Diffusion", dependencies: [
            "Kernels", "SafeTensors", "Networks", "Tokenization", "Imaging", "Merging",
        ], swiftSettings: fast),
        .target(name: "Merging", dependencies: [
            "Kernels", "SafeTensors", "CSHA256", .product(name: "Yams", package: "Yams"),
        ], swiftSettings: fast),
        .target(name: "Evaluation", dependencies: [
            "Kernels", "Networks", "Tokenization", "Diffusion", "Imaging",
            .product(name: "Yams", package: "Yams"), .product(name: "GRDB", package: "GRDB.swift"),
        ], swiftSettings: fast),
        .target(name: "Evolution", dependencies: [
            "COpenBLAS", "Kernels", "Networks", "Diffusion", "Merging", "Evaluation", "Imaging",
            .product(name: "GRDB", package: "GRDB.swift"), .product(name: "Yams", package: "Yams"),
        ], swiftSettings: fast),

        // Executables: thin layers over the libraries.
        .executableTarget(name: "jpgen", dependencies: [
            "Kernels", "SafeTensors", "Imaging", "Tokenization", "Networks", "Diffusion", "Evaluation",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
        ], swiftSettings: fast),
        .executableTarget(name: "evomerge", dependencies: [
            "Kernels", "SafeTensors", "Merging", "Evaluation", "Evolution", "Diffusion", "Networks", "Imaging",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
        ], swiftSettings: fast),
        .executableTarget(name: "jpbench", dependencies: [
            "COpenBLAS", "Kernels", "SafeTensors", "Tokenization", "Networks", "Diffusion", "Merging",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ], swiftSettings: fast),

        // Tests. Fixtures live in Tests/Fixtures/<area>/ (written by Tools/fixtures/*.py).
        .testTarget(name: "KernelsTests", dependencies: ["Kernels", "CKernels"]),
        .testTarget(name: "SafeTensorsTests", dependencies: ["SafeTensors"]),
        .testTarget(name: "ImagingTests", dependencies: ["Imaging", "SafeTensors"]),
        .testTarget(name: "TokenizationTests", dependencies: ["Tokenization"]),
        .testTarget(name: "NetworksTests", dependencies: ["Networks", "Tokenization"]),
        .testTarget(name: "DiffusionTests", dependencies: ["Diffusion"]),
        .testTarget(name: "MergingTests", dependencies: ["Merging"]),
        .testTarget(name: "EvaluationTests", dependencies: ["Evaluation"]),
        .testTarget(name: "EvolutionTests", dependencies: ["Evolution", "Merging", "Evaluation", "Diffusion", "Imaging", "Networks", "Kernels"]),
        .testTarget(name: "CLITests", dependencies: ["SafeTensors", "Imaging", "Evaluation", "Tokenization"]),
    ]
)
