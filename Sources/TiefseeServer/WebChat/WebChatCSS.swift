extension WebChatAssets {
    static let css = #"""
:root {
  --bg: #f6f7f9; --panel: #ffffff; --line: #dde1e6; --text: #1d2329; --muted: #66707a;
  --accent: #0b6bcb; --accent-soft: #e3effb; --code-bg: #f1f3f5; --error: #b3261e;
  font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", sans-serif;
  font-size: 15px; color: var(--text); background: var(--bg);
}
* { box-sizing: border-box; }
body { margin: 0; height: 100vh; overflow: hidden; }
[hidden] { display: none !important; }
button, input, select, textarea { font: inherit; color: inherit; }
button {
  border: 1px solid var(--line); background: var(--panel); border-radius: 6px; padding: 6px 12px; cursor: pointer;
}
button:hover:not(:disabled) { border-color: var(--accent); }
button:disabled { opacity: .5; cursor: default; }
button.primary { background: var(--accent); border-color: var(--accent); color: #fff; }
button.link { border: none; background: none; color: var(--accent); padding: 2px 4px; }
button.wide { width: 100%; }
input, select, textarea { border: 1px solid var(--line); border-radius: 6px; padding: 6px 8px; background: #fff; }
.muted { color: var(--muted); }
.small { font-size: 13px; }
.error { color: var(--error); }

#app { display: flex; height: 100vh; }

/* Sidebar: conversations */
#sidebar { width: 240px; background: #eef1f4; border-right: 1px solid var(--line); display: flex; flex-direction: column; padding: 12px; gap: 10px; }
.brand { font-weight: 700; font-size: 18px; letter-spacing: .02em; }
#conversations { flex: 1; overflow-y: auto; display: flex; flex-direction: column; gap: 2px; }
.conv { display: flex; align-items: center; border-radius: 6px; }
.conv button.open { flex: 1; text-align: left; border: none; background: none; padding: 6px 8px; overflow: hidden; white-space: nowrap; text-overflow: ellipsis; }
.conv.active { background: var(--accent-soft); }
.conv button.delete { border: none; background: none; color: var(--muted); visibility: hidden; padding: 4px 6px; }
.conv:hover button.delete { visibility: visible; }
#account { display: flex; justify-content: space-between; align-items: center; font-size: 13px; color: var(--muted); }

/* Main column */
#main { flex: 1; display: flex; flex-direction: column; min-width: 0; }
#toolbar { display: flex; align-items: center; gap: 10px; padding: 10px 16px; border-bottom: 1px solid var(--line); background: var(--panel); }
.kb-picker { display: flex; align-items: center; gap: 6px; color: var(--muted); }
.upload-bar { display: flex; align-items: center; gap: 10px; padding: 6px 16px; font-size: 13px; background: var(--panel); border-bottom: 1px solid var(--line); }
#upload-name { font-weight: 600; max-width: 40%; overflow: hidden; white-space: nowrap; text-overflow: ellipsis; }
#upload-progress { width: 220px; height: 10px; }
#upload-status[data-done="error"] #upload-text { color: var(--error); }
.spacer { flex: 1; }

#messages { flex: 1; overflow-y: auto; padding: 20px 0; }
.empty { text-align: center; margin-top: 18vh; }
.msg { max-width: 820px; margin: 0 auto 18px; padding: 0 20px; }
.msg .who { font-size: 12px; font-weight: 600; color: var(--muted); margin-bottom: 4px; text-transform: uppercase; letter-spacing: .04em; }
.msg.user .body { background: var(--accent-soft); border-radius: 10px; padding: 10px 14px; white-space: pre-wrap; }
.msg.assistant .body { line-height: 1.55; }
.msg .body > :first-child { margin-top: 0; }
.msg .body > :last-child { margin-bottom: 0; }
.msg .error { margin-top: 6px; }
.msg .actions { margin-top: 6px; display: flex; gap: 6px; }
.msg .actions button { font-size: 12px; padding: 3px 8px; }
.msg .stats { font-size: 12px; color: var(--muted); margin-left: auto; align-self: center; }
details.reasoning { border-left: 3px solid var(--line); padding: 2px 0 2px 10px; margin-bottom: 8px; color: var(--muted); }
details.reasoning summary { cursor: pointer; font-size: 13px; }
details.reasoning .thought { white-space: pre-wrap; font-size: 13px; margin-top: 6px; }
.cursor::after { content: "▍"; animation: blink 1s steps(2) infinite; color: var(--accent); }
@keyframes blink { 50% { opacity: 0; } }

/* Rendered Markdown */
.body pre { background: var(--code-bg); border-radius: 6px; padding: 10px 12px; overflow-x: auto; font-size: 13px; position: relative; }
.body pre .lang { position: absolute; top: 4px; right: 8px; font-size: 11px; color: var(--muted); }
.body code { font-family: ui-monospace, "SF Mono", Menlo, Consolas, monospace; font-size: 0.92em; }
.body :not(pre) > code { background: var(--code-bg); padding: 1px 4px; border-radius: 4px; }
.body blockquote { border-left: 3px solid var(--line); margin: 0; padding-left: 12px; color: var(--muted); }
.body table { border-collapse: collapse; margin: 8px 0; }
.body th, .body td { border: 1px solid var(--line); padding: 4px 8px; }
.body .align-right { text-align: right; } .body .align-center { text-align: center; }
.body h1, .body h2, .body h3, .body h4 { margin: 14px 0 6px; line-height: 1.25; }
.body h1 { font-size: 1.4em; } .body h2 { font-size: 1.25em; } .body h3 { font-size: 1.1em; }
button.cite { font-size: 11px; line-height: 1; padding: 2px 5px; margin: 0 1px; border-radius: 4px; vertical-align: super;
  background: var(--accent-soft); border: 1px solid #b9d4f1; color: var(--accent); }
.sources { margin-top: 10px; font-size: 13px; display: flex; flex-wrap: wrap; align-items: center; gap: 6px; }
.sources .label { color: var(--muted); font-size: 12px; }
.sources button { font-size: 12px; padding: 3px 8px; background: #fff; }
.sources button.cited { border-color: #b9d4f1; background: var(--accent-soft); }

/* Composer */
#composer { display: flex; gap: 8px; max-width: 860px; width: 100%; margin: 0 auto; padding: 12px 20px 18px; }
#prompt { flex: 1; resize: none; max-height: 200px; padding: 10px 12px; border-radius: 10px; overflow-y: hidden; }

/* Model panel */
#model-panel { width: 280px; flex: none; overflow-x: hidden; border-left: 1px solid var(--line); background: var(--panel); padding: 14px; overflow-y: auto; }
#model-panel h3 { margin: 0 0 8px; font-size: 15px; word-break: break-all; }
#model-panel h4 { margin: 16px 0 6px; font-size: 13px; text-transform: uppercase; color: var(--muted); letter-spacing: .04em; }
#model-panel dl { display: grid; grid-template-columns: auto minmax(0, 1fr); gap: 3px 10px; margin: 0; font-size: 13px; }
#model-panel dt { color: var(--muted); white-space: nowrap; }
#model-panel dd { margin: 0; text-align: right; overflow-wrap: anywhere; }
#model-panel label { display: flex; justify-content: space-between; align-items: center; gap: 8px; font-size: 13px; margin: 6px 0; }
#model-panel label input[type=number] { width: 80px; }
#model-panel label textarea { width: 100%; }
#model-panel label:has(textarea) { flex-direction: column; align-items: stretch; }
#model-panel label:has(input[type=checkbox]) { justify-content: flex-start; }
.meter { height: 8px; background: var(--code-bg); border-radius: 4px; overflow: hidden; }
#context-bar { height: 100%; width: 0; background: var(--accent); transition: width .3s; }
#context-bar.full { background: var(--error); }
#moe-canvas { width: 100%; border: 1px solid var(--line); border-radius: 4px; image-rendering: pixelated; }

/* Overlays: login, passage */
.overlay { position: fixed; inset: 0; background: rgba(20, 26, 32, .45); display: flex; align-items: center; justify-content: center; z-index: 10; }
.card { background: var(--panel); border-radius: 12px; padding: 24px; box-shadow: 0 10px 40px rgba(0,0,0,.2); }
#login-form { width: 340px; display: flex; flex-direction: column; gap: 12px; }
#login-form h1 { margin: 0; font-size: 22px; }
#login-form p { margin: 0; }
#login-form label { display: flex; flex-direction: column; gap: 4px; font-size: 13px; color: var(--muted); }
.passage-card { width: min(680px, 92vw); max-height: 80vh; overflow-y: auto; position: relative; }
.passage-card h3 { margin: 0 24px 4px 0; }
.passage-card .close { position: absolute; top: 10px; right: 12px; font-size: 22px; }
#passage-text { white-space: pre-wrap; background: var(--code-bg); border-radius: 6px; padding: 12px; font-size: 14px; line-height: 1.5; }

@media (max-width: 800px) { #sidebar { display: none; } #model-panel { position: fixed; right: 0; top: 0; bottom: 0; z-index: 5; } }
"""#
}
