/// Builds the right architecture for a model's files.
public enum ModelLoader {
    public static func load(_ files: ModelFiles) throws -> TransformerModel {
        guard let config = files.config else {
            throw files.configError ?? ConfigError(message: "unsupported model architecture '\(files.architectureName)'")
        }
        var weights = WeightLoader(source: files.weights, naming: files.naming, fileName: files.location.path)
        weights.fp8BlockSize = config.fp8BlockSize
        switch config.family {
        case .llama, .mistral, .qwen2, .qwen3:
            return try DenseDecoder.load(config: config, weights: weights)
        case .mixtral, .qwen2moe, .qwen3moe:
            return try MoEDecoder.load(config: config, weights: weights)
        case .deepseekV2, .deepseekV3:
            return try DeepSeekDecoder.load(config: config, weights: weights)
        case .deepseekV32:
            return try DeepSeekV32Decoder.load(config: config, weights: weights)
        case .deepseekV4:
            return try DeepSeekV4Decoder.load(config: config, weights: weights)
        }
    }
}
