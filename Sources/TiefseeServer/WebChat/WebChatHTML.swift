extension WebChatAssets {
    /// The page's skeleton; chat.js fills it.
    static let html = #"""
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Tiefsee</title>
<link rel="stylesheet" href="/chat.css">
<script src="/markdown.js" defer></script>
<script src="/chat.js" defer></script>
</head>
<body>

<div id="login" class="overlay" hidden>
  <form id="login-form" class="card">
    <h1>Tiefsee</h1>
    <p class="muted" id="login-hint">Sign in with your company account.</p>
    <label id="login-user-row">User <input id="login-user" name="user" autocomplete="username" required></label>
    <label id="login-password-row">Password <input id="login-password" name="password" type="password" autocomplete="current-password" required></label>
    <label id="login-key-row" hidden>API key <input id="login-key" name="key" type="password" autocomplete="off"></label>
    <p id="login-error" class="error" hidden></p>
    <button id="login-submit" type="submit" class="primary">Sign in</button>
  </form>
</div>

<div id="app">
  <aside id="sidebar">
    <div class="brand">Tiefsee</div>
    <button id="new-chat" class="primary wide">+ New chat</button>
    <nav id="conversations" aria-label="Conversations"></nav>
    <div id="account">
      <span id="account-name"></span>
      <button id="logout" class="link" hidden>Sign out</button>
    </div>
  </aside>

  <main id="main">
    <header id="toolbar">
      <label class="kb-picker">Knowledge
        <select id="kb-select"><option value="">none</option></select>
      </label>
      <button id="upload-button" title="Add a document to the selected knowledge base" disabled>Upload…</button>
      <input id="upload-input" type="file" accept=".txt,.md,.markdown,.html,.htm,.pdf,.docx" hidden>
      <span class="spacer"></span>
      <button id="model-toggle" title="Model and parameters">Model</button>
    </header>
    <div id="upload-status" class="upload-bar" hidden>
      <span id="upload-name"></span>
      <progress id="upload-progress" max="100" value="0"></progress>
      <span id="upload-text"></span>
      <button id="upload-dismiss" class="link" aria-label="Dismiss">×</button>
    </div>

    <section id="messages" aria-live="polite">
      <div id="empty" class="empty">
        <h2>Ask anything</h2>
        <p class="muted">Pick a knowledge base to answer from company documents, with sources.</p>
      </div>
    </section>

    <form id="composer">
      <textarea id="prompt" rows="1" placeholder="Message (Enter sends, Shift+Enter: new line)"></textarea>
      <button id="send" type="submit" class="primary">Send</button>
      <button id="stop" type="button" hidden>Stop</button>
    </form>
  </main>

  <aside id="model-panel" hidden>
    <h3 id="model-name">Model</h3>
    <dl id="model-facts"></dl>
    <h4>Context</h4>
    <div class="meter"><div id="context-bar"></div></div>
    <p id="context-text" class="muted small"></p>
    <div id="moe" hidden>
      <h4>Experts per token</h4>
      <p id="moe-text" class="small"></p>
      <canvas id="moe-canvas" width="240" height="120" aria-label="share of experts chosen per layer"></canvas>
      <p class="muted small">Each row a MoE layer, each cell an expert; darker: chosen for more tokens (since the server started).</p>
    </div>
    <h4>Parameters</h4>
    <label>Temperature <input id="p-temperature" type="number" min="0" max="2" step="0.1" value="0.7"></label>
    <label>Top p <input id="p-top-p" type="number" min="0" max="1" step="0.05" value="1"></label>
    <label>Max tokens <input id="p-max-tokens" type="number" min="1" step="1" value="512"></label>
    <label>Passages <input id="p-top-k" type="number" min="1" max="20" step="1" value="3"></label>
    <label id="think-row" hidden><input id="p-think" type="checkbox"> Think before answering</label>
    <label>System prompt <textarea id="p-system" rows="3" placeholder="optional"></textarea></label>
  </aside>
</div>

<div id="passage" class="overlay" hidden>
  <div class="card passage-card" role="dialog" aria-labelledby="passage-title">
    <button id="passage-close" class="link close" aria-label="Close">×</button>
    <h3 id="passage-title"></h3>
    <p id="passage-where" class="muted small"></p>
    <div id="passage-text"></div>
  </div>
</div>
</body>
</html>
"""#
}
