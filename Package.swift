// swift-tools-version:6.0
import PackageDescription

// Hot loops need AVX2/FMA/F16C: without -target-cpu Swift SIMD FMA and Float16 turn into
// library calls (10-50x slower). The C kernels get their own flags and stay fast in debug.
let swiftFlags: [SwiftSetting] = [.unsafeFlags(["-target-cpu", "haswell"])]
let cFlags: [CSetting] = [.unsafeFlags(["-O3", "-mavx2", "-mfma", "-mf16c"])]

let package = Package(
    name: "Tiefsee",
    products: [
        .library(name: "Tiefsee", targets: ["Tiefsee", "TiefseeKnowledge", "TiefseeServer"]),
        .executable(name: "tiefsee", targets: ["tiefsee"]),
    ],
    targets: [
        .target(name: "CKernels", path: "Sources/CKernels", cSettings: cFlags),
        // HTTP/1.1 for `tiefsee serve` (Debian: libmicrohttpd-dev, installed by scripts/setup.sh).
        .systemLibrary(
            name: "CMicroHTTPD", path: "Sources/CMicroHTTPD", pkgConfig: "libmicrohttpd",
            providers: [.apt(["libmicrohttpd-dev"])]),
        // Debian's libsqlite3 (libsqlite3-dev, installed by scripts/setup.sh): knowledge bases.
        .systemLibrary(name: "CSQLite", path: "Sources/CSQLite", pkgConfig: "sqlite3"),
        // Bottom layer: file formats (JSON, memory maps, GGUF, safetensors) and the leaf types
        // they need (TensorType, Tensor, SHA-256, cache paths). Imports no other Tiefsee module.
        .target(
            name: "TiefseeFormats", dependencies: ["CKernels"], path: "Sources/TiefseeFormats",
            swiftSettings: swiftFlags),
        // Jinja chat templates (lexer, parser, interpreter, filters, values) and the DeepSeek
        // V3/V3.2/V4 Python-encoder ports. Imports TiefseeFormats (JSON, GGUF metadata).
        .target(
            name: "TiefseeTemplates", dependencies: ["TiefseeFormats"], path: "Sources/TiefseeTemplates",
            swiftSettings: swiftFlags),
        // Core: tensors, models, tokenizer, generation. It re-exports the lower modules
        // (Sources/Tiefsee/Exports.swift), so `import Tiefsee` also sees formats and templates.
        .target(
            name: "Tiefsee", dependencies: ["TiefseeFormats", "TiefseeTemplates", "CKernels"],
            path: "Sources/Tiefsee", swiftSettings: swiftFlags),
        // Embedding models, rerankers, knowledge bases (SQLite + FTS5), grounded answers.
        .target(
            name: "TiefseeKnowledge", dependencies: ["Tiefsee", "CSQLite"], path: "Sources/TiefseeKnowledge",
            swiftSettings: swiftFlags),
        // `tiefsee serve`: HTTP, OpenAI/Anthropic endpoints, scheduler, tool calls, users, chat page.
        .target(
            name: "TiefseeServer", dependencies: ["Tiefsee", "TiefseeKnowledge", "CMicroHTTPD"],
            path: "Sources/TiefseeServer", swiftSettings: swiftFlags),
        .executableTarget(
            name: "tiefsee", dependencies: ["Tiefsee", "TiefseeKnowledge", "TiefseeServer"], path: "Sources/tiefsee",
            swiftSettings: swiftFlags),
        .testTarget(
            name: "TiefseeTests", dependencies: ["Tiefsee", "TiefseeFormats", "TiefseeTemplates", "TiefseeKnowledge", "TiefseeServer", "CKernels"],
            path: "Tests/TiefseeTests",
            swiftSettings: swiftFlags),
    ],
    swiftLanguageModes: [.v5]
)
