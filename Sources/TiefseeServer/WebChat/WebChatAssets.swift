/// The chat page's files, compiled into the binary as plain text (HTML, CSS, JavaScript written
/// by hand, no build step, nothing fetched from elsewhere). Each lives in its own Swift file as
/// a raw string literal: WebChatHTML, WebChatCSS, WebChatMarkdownJS (a small Markdown renderer
/// that escapes all HTML), WebChatAppJS (the page's logic).
enum WebChatAssets {
    struct File {
        let contentType: String
        let body: String
    }

    static let files: [String: File] = [
        "/": File(contentType: "text/html; charset=utf-8", body: html),
        "/index.html": File(contentType: "text/html; charset=utf-8", body: html),
        "/chat.css": File(contentType: "text/css; charset=utf-8", body: css),
        "/markdown.js": File(contentType: "text/javascript; charset=utf-8", body: markdownJS),
        "/chat.js": File(contentType: "text/javascript; charset=utf-8", body: appJS),
    ]
}
