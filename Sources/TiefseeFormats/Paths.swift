import Foundation

/// Where Tiefsee keeps downloaded models: $TIEFSEE_HOME/models, default ~/.cache/tiefsee/models.
public enum ModelCache {
    public static var home: String {
        if let h = ProcessInfo.processInfo.environment["TIEFSEE_HOME"], !h.isEmpty { return h }
        return NSHomeDirectory() + "/.cache/tiefsee"
    }
    public static var modelsDirectory: String { home + "/models" }

    /// The embedded default model (fetched by scripts/fetch-model.sh).
    public static let defaultModelFile = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
    public static var defaultModelPath: String { modelsDirectory + "/" + defaultModelFile }
}
