import Tiefsee
/// What a request says the output must look like: `response_format` (json_object, json_schema),
/// llama.cpp's `grammar` field (GBNF text), and a `tool_choice` that forces one tool, whose
/// arguments then follow the tool's `parameters` schema. Each becomes one `Grammar` that
/// sampling follows (Generation/ConstrainedSampling.swift).
extension OpenAIServer {
    static let anyObjectGrammar = try! Grammar(gbnf: JSONSchemaGrammar.anyObjectGBNF)

    /// The grammar from `response_format` / `grammar`, or nil for free text.
    func readOutputGrammar(_ r: RequestReader) throws -> Grammar? {
        var grammar: Grammar? = nil
        if let rf = r.present("response_format") {
            guard let t = rf["type"]?.string else { throw OpenAIError.badParam("response_format", "'response_format' must be an object with a 'type'") }
            switch t {
            case "text": break
            case "json_object": grammar = OpenAIServer.anyObjectGrammar
            case "json_schema":
                // OpenAI nests the schema in json_schema.schema; llama.cpp also takes it at the top.
                guard let schema = rf["json_schema"]?["schema"] ?? rf["schema"] else {
                    throw OpenAIError.badParam("response_format", "response_format json_schema needs json_schema.schema")
                }
                do { grammar = try JSONSchemaGrammar.grammar(for: schema) } catch {
                    throw OpenAIError.badParam("response_format", "\(error)")
                }
            default: throw OpenAIError.badParam("response_format", "unsupported response_format type '\(t)'")
            }
        }
        if let g = r.present("grammar") {
            guard let text = g.string else { throw OpenAIError.badParam("grammar", "'grammar' must be a string of GBNF rules") }
            guard grammar == nil else { throw OpenAIError.badParam("grammar", "give either 'grammar' or a JSON response_format, not both") }
            do { grammar = try Grammar(gbnf: text) } catch { throw OpenAIError.badParam("grammar", "\(error)") }
        }
        return grammar
    }

    /// The grammar of a call of tool `name`: its arguments follow `parameters` (any object when
    /// the tool declares none). `prefix` is what the prompt already ends with (the opening of the
    /// template's call block and the name); without one the whole call is generated as the bare
    /// `{"name": …, "arguments": …}` object the tool-call parser reads.
    static func forcedToolGrammar(name: String, parameters: JSONValue?, prefixed: Bool, closing: String) throws -> Grammar {
        let schema = parameters ?? .object([("type", .string("object"))])
        do {
            if prefixed { return try JSONSchemaGrammar.grammar(for: schema, after: "}" + closing) }
            return try JSONSchemaGrammar.grammar(for: schema, before: "{\"name\": \(JSONValue.string(name).serialized()), \"arguments\": ", after: "}")
        } catch {
            throw OpenAIError.badParam("tools", "the parameters schema of tool '\(name)' cannot be enforced: \(error)")
        }
    }
}
