import Foundation
import Tiefsee

let usage = """
tiefsee — run DeepSeek-style open-weight models locally

usage: tiefsee COMMAND [ARGS] (tiefsee COMMAND --help for details)

commands:
  info [MODEL]              architecture, parameters, tensor types, context, tokens, template
  tokenize PATH TEXT        token ids of a text (PATH: GGUF, model folder or tokenizer.json)
  detokenize PATH IDS       text of comma-separated token ids
  template PATH --messages FILE.json   render the chat template
  run [MODEL] -p PROMPT     generate from a prompt (streams tokens)
  chat [MODEL]              interactive chat
  logits [MODEL] --tokens IDS | --text TEXT   teacher-forced logits as JSON
  bench [MODEL]             prompt/generation speed, memory bandwidth, roofline share
  serve [MODEL]             OpenAI-compatible HTTP server on 127.0.0.1
  embed [MODEL] TEXT…       sentence embeddings (--json: {"embeddings": [[…], …]})
  kb add|search|ls|rm …     local knowledge bases: ingest documents, hybrid search
  ask "QUESTION" [--kb NAME] [MODEL]   answer from a knowledge base, with cited sources
  user add|list|remove|passwd|key …    users and API keys of tiefsee serve
  group add|list|remove|member|grant … groups and the knowledge bases they may read
  quantize IN OUT --type T   convert a model folder or GGUF to a quantized GGUF (Q8_0 … Q2_K, IQ4_XS … IQ1_S)
  imatrix [MODEL] --text FILE -o OUT   importance matrix for quantize --imatrix (llama.cpp's format)

MODEL is a GGUF file, a Hugging Face folder, or a cached model name; without it the default
model (Qwen2.5-Coder-0.5B-Instruct Q4_K_M, fetched by scripts/fetch-model.sh) is used.
"""

let argv = CommandLine.arguments
let commands: [String: (ArraySlice<String>) throws -> Void] = [
    "info": InfoCommand.run,
    "tokenize": TokenizeCommand.run,
    "detokenize": DetokenizeCommand.run,
    "template": TemplateCommand.run,
    "run": RunCommand.run,
    "chat": ChatCommand.run,
    "logits": LogitsCommand.run,
    "bench": BenchCommand.run,
    "serve": ServeCommand.run,
    "embed": EmbedCommand.run,
    "kb": KnowledgeCommand.run,
    "ask": AskCommand.run,
    "user": UserCommand.run,
    "group": GroupCommand.run,
    "quantize": QuantizeCommand.run,
    "imatrix": ImatrixCommand.run,
]

guard argv.count >= 2, argv[1] != "--help", argv[1] != "-h", argv[1] != "help" else {
    print(usage)
    exit(argv.count >= 2 ? 0 : 1)
}
guard let command = commands[argv[1]] else {
    err("tiefsee: unknown command '\(argv[1])' (see tiefsee --help)")
    exit(2)
}
do {
    try command(argv[2...])
} catch {
    err("tiefsee \(argv[1]): \(error)")
    exit(1)
}
