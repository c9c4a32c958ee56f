/// Follows a `Grammar` byte by byte, the way a token's bytes arrive from the tokenizer.
///
/// The state is a set of parse stacks, as in an Earley/GLR reader without the chart: each stack
/// is a path of positions in `Grammar.elements`, the top being the next thing to read and the
/// rest the places to come back to when a sequence ends. Stacks are kept "expanded": every top
/// is a character set (rule references are replaced by their alternatives up front), and an
/// empty stack means the whole grammar may end here.
///
/// Stack nodes live in one arena with hash-consing — a node is (position, parent node), and the
/// same pair is always the same node — so stacks share their tails, a state is a short sorted
/// list of node ids, and two equal states compare (and hash) equal cheaply: that is what lets
/// token masks be cached per state.
///
/// UTF-8: a character split across tokens leaves a partial state (its lead byte and the
/// continuation bytes so far); a stack survives while its character set holds some code point
/// that the bytes so far can still become.
public struct GrammarState: Hashable, Sendable {
    /// Top node ids, sorted; `GrammarMatcher.accepting` (-1) is the empty stack.
    var tops: [Int32]
    /// The code point's bits read so far, and how many continuation bytes are still missing.
    var partialValue: UInt32 = 0
    var partialLeft: UInt8 = 0
    /// Total continuation bytes of the partial character (to know its code point range).
    var partialTotal: UInt8 = 0

    public var isDead: Bool { tops.isEmpty }
}

public final class GrammarMatcher {
    public let grammar: Grammar
    static let accepting: Int32 = -1

    // The node arena: position in grammar.elements and parent node (-1: bottom of the stack).
    private var nodePos: [Int32] = []
    private var nodeParent: [Int32] = []
    private var intern: [Int64: Int32] = [:]
    /// Grows with distinct stacks ever seen; `compact` starts a fresh arena past this size.
    static let arenaLimit = 2_000_000

    public private(set) var state: GrammarState

    public init(_ grammar: Grammar) {
        self.grammar = grammar
        state = GrammarState(tops: [])
        state = initialState()
    }

    /// The state before any byte: the root rule's alternatives, expanded.
    func initialState() -> GrammarState {
        var tops: [Int32] = []
        for start in grammar.alternatives[grammar.root] { expand(node(start, GrammarMatcher.accepting), into: &tops) }
        tops.sort()
        return GrammarState(tops: tops)
    }

    /// True when the text so far is a complete sentence of the grammar.
    public var canEnd: Bool { GrammarMatcher.canEnd(state) }
    /// True when the text is complete and nothing may follow it.
    public var mustEnd: Bool { state.tops == [GrammarMatcher.accepting] && state.partialLeft == 0 }

    static func canEnd(_ s: GrammarState) -> Bool { s.partialLeft == 0 && s.tops.first == accepting }

    /// Feeds bytes; returns false (and leaves the state unchanged) if they cannot continue the text.
    @discardableResult
    public func accept(bytes: some Sequence<UInt8>) -> Bool {
        var s = state
        for b in bytes {
            guard let n = step(s, b) else { return false }
            s = n
        }
        state = s
        if nodePos.count > GrammarMatcher.arenaLimit { compact() }
        return true
    }

    /// Whether `bytes` could continue the text (the state is not changed).
    public func allows(bytes: some Sequence<UInt8>) -> Bool {
        var s = state
        for b in bytes {
            guard let n = step(s, b) else { return false }
            s = n
        }
        return true
    }

    // MARK: - Stepping

    /// The state after one more byte, or nil when no stack can read it.
    func step(_ s: GrammarState, _ b: UInt8) -> GrammarState? {
        if s.partialLeft > 0 {
            guard b & 0xC0 == 0x80 else { return nil }
            let value = s.partialValue << 6 | UInt32(b & 0x3F)
            if s.partialLeft == 1 {
                // UTF-16 surrogates are not characters: UTF-8 never encodes them.
                if (0xD800...0xDFFF).contains(value) { return nil }
                return advance(s.tops, value)
            }
            var n = GrammarState(tops: [], partialValue: value, partialLeft: s.partialLeft - 1, partialTotal: s.partialTotal)
            n.tops = viable(s.tops, n)
            return n.tops.isEmpty ? nil : n
        }
        if b < 0x80 { return advance(s.tops, UInt32(b)) }
        let extra: UInt8, bits: UInt32
        switch b {
        case 0xC2...0xDF: extra = 1; bits = UInt32(b & 0x1F)
        case 0xE0...0xEF: extra = 2; bits = UInt32(b & 0x0F)
        case 0xF0...0xF4: extra = 3; bits = UInt32(b & 0x07)
        default: return nil   // a continuation byte without a lead, or a byte UTF-8 never uses
        }
        var n = GrammarState(tops: [], partialValue: bits, partialLeft: extra, partialTotal: extra)
        n.tops = viable(s.tops, n)
        return n.tops.isEmpty ? nil : n
    }

    /// The code points a partial character can still become.
    static func range(_ s: GrammarState) -> (UInt32, UInt32) {
        let shift = UInt32(s.partialLeft) * 6
        var lo = s.partialValue << shift, hi = lo | ((1 << shift) - 1)
        // The shortest encoding only: 2 bytes start at U+80, 3 at U+800, 4 at U+10000.
        let minimum: [UInt32] = [0, 0x80, 0x800, 0x10000]
        lo = max(lo, minimum[Int(s.partialTotal)])
        hi = min(hi, 0x10FFFF)
        // A range wholly inside the surrogates (ED A0…ED BF) can never complete.
        if lo >= 0xD800 && hi <= 0xDFFF { return (1, 0) }
        return (lo, hi)
    }

    /// The stacks whose next character set meets what the partial character can become.
    private func viable(_ tops: [Int32], _ s: GrammarState) -> [Int32] {
        let (lo, hi) = GrammarMatcher.range(s)
        guard lo <= hi else { return [] }
        return tops.filter { n in
            guard n != GrammarMatcher.accepting, case .chars(let set) = grammar.elements[Int(nodePos[Int(n)])] else { return false }
            return set.intersects(lo, hi)
        }
    }

    /// Reads the code point `c` on every stack that can, then expands the results.
    private func advance(_ tops: [Int32], _ c: UInt32) -> GrammarState? {
        var out: [Int32] = []
        for n in tops where n != GrammarMatcher.accepting {
            let pos = nodePos[Int(n)]
            guard case .chars(let set) = grammar.elements[Int(pos)], set.contains(c) else { continue }
            expand(node(pos + 1, nodeParent[Int(n)]), into: &out)
        }
        guard !out.isEmpty else { return nil }
        out.sort()
        return GrammarState(tops: out)
    }

    /// Replaces rule references and sequence ends at the top of stack `n` until every top is a
    /// character set (or the stack is empty), adding the results to `out`. A continuation that
    /// is only the end of a sequence is not pushed (a tail call), so right recursion — which is
    /// how repetitions are written — keeps the stacks as deep as the nesting, not the length.
    private func expand(_ n: Int32, into out: inout [Int32]) {
        if n == GrammarMatcher.accepting {
            if !out.contains(n) { out.append(n) }
            return
        }
        let pos = Int(nodePos[Int(n)])
        switch grammar.elements[pos] {
        case .chars:
            if !out.contains(n) { out.append(n) }
        case .end:
            expand(nodeParent[Int(n)], into: &out)
        case .rule(let r):
            let parent = nodeParent[Int(n)]
            let cont = grammar.elements[pos + 1] == .end ? parent : node(Int32(pos + 1), parent)
            for start in grammar.alternatives[r] { expand(node(start, cont), into: &out) }
        }
    }

    private func node(_ pos: Int32, _ parent: Int32) -> Int32 {
        let key = Int64(pos) << 32 | Int64(UInt32(bitPattern: parent))
        if let id = intern[key] { return id }
        let id = Int32(nodePos.count)
        nodePos.append(pos); nodeParent.append(parent)
        intern[key] = id
        return id
    }

    /// Starts a fresh arena holding only the current state's stacks.
    private func compact() {
        var map: [Int32: Int32] = [GrammarMatcher.accepting: GrammarMatcher.accepting]
        let oldPos = nodePos, oldParent = nodeParent
        nodePos = []; nodeParent = []; intern = [:]
        func copy(_ n: Int32) -> Int32 {
            if let m = map[n] { return m }
            let m = node(oldPos[Int(n)], copy(oldParent[Int(n)]))
            map[n] = m
            return m
        }
        state.tops = state.tops.map(copy).sorted()
        epoch &+= 1
    }

    /// Changes when node ids are renumbered (caches keyed by states must be dropped).
    public private(set) var epoch = 0
}
