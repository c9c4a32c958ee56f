import Foundation

/// llama.cpp's importance matrix ("imatrix"): for every weight matrix of the model and every
/// input column j, the sum over a calibration text of x_j² — the squared activation that column
/// multiplies — and the number of activation rows summed. The quantizer weighs a weight's
/// rounding error by the mean x_j² of its column: y = W x changes by Σ_j ΔW_ij x_j, so errors in
/// columns that see large activations cost more (ggml-quants' `quant_weights`).
///
/// File format (llama.cpp's `llama-imatrix`, GGUF): `general.type = "imatrix"`,
/// `imatrix.datasets` (strings), `imatrix.chunk_count`, `imatrix.chunk_size` (u32); per matrix
/// `NAME.in_sum2` (F32, [n_mat, columns] row-major: one row per expert of a stacked tensor, else
/// one) and `NAME.counts` (F32, [n_mat, 1]), NAME the weight's GGUF name.
public struct ImportanceMatrix {
    public struct Entry {
        public var columns: Int
        /// Σ x² per matrix and column: `matrices` × `columns`.
        public var sums: [Double]
        /// Rows (tokens) summed per matrix.
        public var counts: [Double]
        public var matrices: Int { counts.count }

        public init(columns: Int, matrices: Int) {
            self.columns = columns
            sums = [Double](repeating: 0, count: columns * matrices)
            counts = [Double](repeating: 0, count: matrices)
        }
    }

    public var entries: [String: Entry] = [:]
    public var datasets: [String] = []
    public var chunkCount = 0
    public var chunkSize = 0

    public init() {}

    /// Reads a GGUF imatrix (as `llama-imatrix` or `tiefsee imatrix` write it).
    public init(path: String) throws {
        let g = try GGUFFile(path: path)
        func bad(_ r: String) -> ModelFileError { .invalid(path: path, reason: r) }
        guard g["general.type"]?.string == "imatrix" else {
            throw bad("not an importance matrix (general.type is \(g["general.type"]?.string ?? "missing"), expected 'imatrix'; the legacy .dat format is not read)")
        }
        datasets = g["imatrix.datasets"]?.stringArray ?? []
        chunkCount = g["imatrix.chunk_count"]?.int ?? 0
        chunkSize = g["imatrix.chunk_size"]?.int ?? 0
        for info in g.tensorInfos where info.name.hasSuffix(".in_sum2") {
            let name = String(info.name.dropLast(".in_sum2".count))
            guard let s = g.tensor(info.name), let c = g.tensor(name + ".counts") else { throw bad("\(name) has sums but no counts") }
            guard s.type == .f32, c.type == .f32, s.shape.count <= 2 else { throw bad("\(name): expected F32 in_sum2 [n_mat, columns] and counts") }
            let cols = s.shape.last ?? 0, nmat = s.shape.count == 2 ? s.shape[0] : 1
            guard c.elementCount == nmat, cols > 0 else { throw bad("\(name): \(c.elementCount) counts for \(nmat) matrices") }
            var e = Entry(columns: cols, matrices: nmat)
            let sp = s.data.assumingMemoryBound(to: Float.self), cp = c.data.assumingMemoryBound(to: Float.self)
            for i in 0..<(cols * nmat) { e.sums[i] = Double(sp[i]) }
            for m in 0..<nmat { e.counts[m] = Double(cp[m]) }
            entries[name] = e
        }
        guard !entries.isEmpty else { throw bad("no .in_sum2/.counts entries") }
    }

    /// Adds `rows` activation rows of `columns` values to matrix `matrix` of `name`
    /// (`matrices` matrices: the experts of a stacked tensor, else 1).
    public mutating func accumulate(_ name: String, matrix: Int, matrices: Int, x: UnsafePointer<Float>, rows: Int, columns: Int) {
        if entries[name] == nil { entries[name] = Entry(columns: columns, matrices: matrices) }
        guard entries[name]!.columns == columns, matrix < entries[name]!.matrices else { return }
        entries[name]!.counts[matrix] += Double(rows)
        entries[name]!.sums.withUnsafeMutableBufferPointer { s in
            let base = s.baseAddress! + matrix * columns
            for r in 0..<rows {
                let xr = x + r * columns
                for j in 0..<columns { base[j] += Double(xr[j] * xr[j]) }
            }
        }
    }

    /// The quantizer's weights for `name`: per matrix and column the mean squared activation
    /// (1 for a matrix that saw no rows, e.g. an expert the text never chose — llama.cpp's
    /// choice). Nil when the matrix has no entry; an error when its shape disagrees.
    public func weights(for name: String, matrices: Int, columns: Int) throws -> [Float]? {
        guard let e = entries[name] else { return nil }
        guard e.columns == columns, e.matrices == matrices || e.matrices == 1 else {
            throw QuantizeError("imatrix entry \(name) is \(e.matrices) x \(e.columns), the tensor \(matrices) x \(columns)")
        }
        var out = [Float](repeating: 1, count: matrices * columns)
        for m in 0..<matrices {
            let src = e.matrices == 1 ? 0 : m
            guard e.counts[src] > 0 else { continue }
            for j in 0..<columns { out[m * columns + j] = Float(e.sums[src * columns + j] / e.counts[src]) }
        }
        return out
    }

    /// Writes the GGUF imatrix, entries in name order (as llama.cpp does).
    public func write(to path: String) throws {
        var w = GGUFWriter()
        w.set("general.type", .string("imatrix"))
        w.set("imatrix.datasets", .array(datasets.map { .string($0) }))
        w.set("imatrix.chunk_count", .uint32(UInt32(chunkCount)))
        w.set("imatrix.chunk_size", .uint32(UInt32(chunkSize)))
        for name in entries.keys.sorted() {
            let e = entries[name]!
            w.add(name + ".in_sum2", shape: [e.matrices, e.columns], f32: e.sums.map { Float($0) })
            w.add(name + ".counts", shape: [e.matrices, 1], f32: e.counts.map { Float($0) })
        }
        try w.write(to: path)
    }
}

extension ImportanceMatrix {
    /// `name` of a matrix product's weight split into the GGUF tensor and the matrix index:
    /// `blk.1.ffn_up_exps.weight[5]` (expert 5 of a stack) → ("blk.1.ffn_up_exps.weight", 5);
    /// nil for weights that are not a file tensor or one slice of it (e.g. transposed copies).
    static func tensorAndMatrix(_ name: String) -> (String, Int)? {
        guard let open = name.lastIndex(of: "[") else { return (name, 0) }
        guard name.hasSuffix("]"), let i = Int(name[name.index(after: open)..<name.index(before: name.endIndex)]) else { return nil }
        return (String(name[..<open]), i)
    }

    /// Runs `model` teacher-forced over `tokens` in chunks of `chunkSize` (each from an empty
    /// cache, as llama-imatrix does; a last partial chunk is dropped) and sums, for every matrix
    /// product of the `blk.*` weights, the squares of its inputs per column. `matrices(name)`
    /// tells how many matrices a stacked tensor holds (its experts), 1 otherwise.
    /// `progress(chunk, chunks)` after each chunk.
    public static func collect(model: TransformerModel, tokens: [Int], chunkSize: Int, maxChunks: Int? = nil,
                               dataset: String, matrices: @escaping (String) -> Int,
                               progress: ((Int, Int) -> Void)? = nil) throws -> ImportanceMatrix {
        var chunks = tokens.count / chunkSize
        if let m = maxChunks { chunks = min(chunks, m) }
        guard chunks > 0 else {
            throw QuantizeError("the text has \(tokens.count) tokens, fewer than one chunk of \(chunkSize)")
        }
        var im = ImportanceMatrix()
        im.datasets = [dataset]
        im.chunkSize = chunkSize
        Linear.activationObserver = { linear, input in
            guard let (name, m) = tensorAndMatrix(linear.weight.name), name.hasPrefix("blk.") else { return }
            im.accumulate(name, matrix: m, matrices: matrices(name), x: input.x, rows: input.rows, columns: linear.inFeatures)
        }
        defer { Linear.activationObserver = nil }
        for c in 0..<chunks {
            let ids = Array(tokens[(c * chunkSize)..<((c + 1) * chunkSize)])
            _ = try model.forward(ids, cache: model.makeCache(capacity: chunkSize), lastK: 1)
            im.chunkCount = c + 1
            progress?(c + 1, chunks)
        }
        return im
    }
}
