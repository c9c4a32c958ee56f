#!/usr/bin/env python3
"""Drives the chat page of a running `tiefsee serve` in headless Chromium (Debian's chromium and
chromium-driver, Python Selenium): signs in, checks the Markdown renderer escapes HTML, uploads
a document into a knowledge base, asks about it, opens the cited passage, stops and regenerates
an answer, opens the model panel, and saves a screenshot of each step. It also checks that the
page made no request to any other host and logged no errors (a Content-Security-Policy
violation is logged as one).

Run by Tests/TiefseeTests/BrowserTests.swift, which starts the servers:

    browser_test.py --url http://127.0.0.1:PORT --user U --password P --kb KB --document FILE
                    --question Q --expect WORD --screenshots DIR [--reasoning-url URL] [--moe-url URL]
"""
import argparse
import json
import os
import sys
import time
from urllib.parse import urlparse

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import Select, WebDriverWait


def start_browser():
    opts = webdriver.ChromeOptions()
    opts.binary_location = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--window-size=1400,900", "--no-first-run", "--disable-extensions",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 # Any name other than the loopback address resolves nowhere.
                 "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver_path = os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")
    return webdriver.Chrome(service=Service(executable_path=driver_path), options=opts)


class Page:
    def __init__(self, driver, shots):
        self.d = driver
        self.shots = shots
        self.wait = WebDriverWait(driver, 120)
        self.step = 0

    def el(self, css):
        return self.d.find_element(By.CSS_SELECTOR, css)

    def visible(self, css, timeout=60):
        return WebDriverWait(self.d, timeout).until(EC.visibility_of_element_located((By.CSS_SELECTOR, css)))

    def until(self, what, fn, timeout=180):
        try:
            # A streamed answer redraws its message: elements found a moment ago may be gone.
            return WebDriverWait(self.d, timeout, poll_frequency=0.2,
                                 ignored_exceptions=(StaleElementReferenceException, NoSuchElementException)).until(lambda d: fn())
        except Exception:
            self.shot("failed-" + what.replace(" ", "-"))
            raise AssertionError("timed out waiting for " + what)

    def shot(self, name):
        self.step += 1
        path = os.path.join(self.shots, "%02d-%s.png" % (self.step, name))
        self.d.save_screenshot(path)
        print("screenshot", path)

    def js(self, script, *args):
        return self.d.execute_script(script, *args)

    def assistant_messages(self):
        return self.d.find_elements(By.CSS_SELECTOR, ".msg.assistant")

    def wait_answer_done(self, count):
        # Finished: the message count is reached and its actions (Copy) are drawn.
        self.until("answer %d" % count, lambda: len(self.assistant_messages()) >= count
                   and self.assistant_messages()[count - 1].find_elements(By.CSS_SELECTOR, ".actions button"))
        return self.assistant_messages()[count - 1]

    def ask(self, text):
        box = self.el("#prompt")
        box.clear()
        box.send_keys(text)
        box.send_keys(Keys.ENTER)


def check(cond, message):
    if not cond:
        raise AssertionError(message)
    print("ok:", message)


def sign_in(p, args):
    p.d.get(args.url + "/")
    p.visible("#login-form")
    p.shot("login")
    p.el("#login-user").send_keys(args.user)
    p.el("#login-password").send_keys("not-the-password")
    p.el("#login-submit").click()
    p.visible("#login-error")
    check("wrong" in p.el("#login-error").text.lower(), "a wrong password is refused: " + p.el("#login-error").text)
    p.el("#login-password").clear()
    p.el("#login-password").send_keys(args.password)
    p.el("#login-submit").click()
    p.until("the app after sign-in", lambda: not p.el("#login").is_displayed())
    p.until("the user name", lambda: p.el("#account-name").text == args.user)
    check(p.js("return document.cookie") == "", "the session cookie is HttpOnly (scripts cannot read it)")


def check_markdown(p):
    html = p.js("return TiefseeMarkdown.render(arguments[0], {citations: 2})",
                "**bold** <img src=x onerror=alert(1)> [x](javascript:alert(1)) [2]\n\n```js\nlet a = '<b>';\n```")
    check("<strong>bold</strong>" in html, "Markdown: bold")
    check("&lt;img" in html and "<img" not in html, "Markdown: HTML in the text is escaped")
    check("javascript:" not in html.replace("[x](javascript:alert(1))", ""), "Markdown: no javascript: links")
    check('class="cite" data-n="2"' in html, "Markdown: [2] becomes a citation")
    check("<pre>" in html and "&lt;b&gt;" in html, "Markdown: fenced code, escaped")


def upload(p, args):
    Select(p.el("#kb-select")).select_by_value(args.kb)
    p.until("the upload button", lambda: p.el("#upload-button").is_enabled())
    # The file input is hidden behind the Upload button; Selenium types the path into it.
    p.js("document.getElementById('upload-input').hidden = false")
    p.el("#upload-input").send_keys(os.path.abspath(args.document))
    p.js("document.getElementById('upload-input').hidden = true")
    p.until("the upload to finish", lambda: p.el("#upload-status").get_attribute("data-done") in ("1", "error"))
    status = p.el("#upload-text").text
    check(p.el("#upload-status").get_attribute("data-done") == "1", "upload finished: " + status)
    check(p.js("return document.getElementById('upload-progress').value") == 100, "the progress bar is full")
    check(os.path.basename(args.document) in p.el("#upload-name").text, "the uploaded file is named")
    p.shot("uploaded")


def open_passage(p, button):
    button.click()
    p.visible("#passage")
    return p.el("#passage-title").text, p.el("#passage-text").text


def close_passage(p):
    p.el("#passage-close").click()
    p.until("the passage to close", lambda: not p.el("#passage").is_displayed())


def cited_answer(p, args):
    p.js("document.getElementById('p-temperature').value = '0'")  # greedy: the same answer every run
    p.ask(args.question)
    p.until("streaming to start", lambda: p.d.find_elements(By.CSS_SELECTOR, ".msg.assistant .body"))
    p.shot("streaming")
    msg = p.wait_answer_done(1)
    text = msg.find_element(By.CSS_SELECTOR, ".body").text
    print("answer:", text)
    sources = msg.find_elements(By.CSS_SELECTOR, ".sources button")
    check(len(sources) > 0, "the answer lists its sources (%d)" % len(sources))
    mine = [s for s in sources if os.path.basename(args.document) in s.text]
    check(len(mine) == 1, "the uploaded document is among the sources")
    check("(p. 1)" in mine[0].text, "its citation names the page: " + mine[0].text)
    cites = msg.find_elements(By.CSS_SELECTOR, ".body button.cite")
    check(len(cites) > 0, "the answer cites with [n] (%d)" % len(cites))
    p.shot("answer")
    # An inline [n] opens the passage it names.
    n = cites[0].text
    title, passage = open_passage(p, cites[0])
    check(title.startswith("[" + n + "]") and len(passage) > 20, "[%s] opens its passage: %s" % (n, title))
    close_passage(p)
    # The uploaded document's passage holds the fact.
    title, passage = open_passage(p, mine[0])
    check(args.expect.lower() in passage.lower(), "the uploaded passage holds '%s'" % args.expect)
    check("Page 1" in p.el("#passage-where").text and "Section:" in p.el("#passage-where").text,
          "the passage shows section and page: " + p.el("#passage-where").text)
    p.shot("passage")
    close_passage(p)
    return text


def stop_and_regenerate(p):
    p.el("#model-toggle").click()
    p.visible("#model-panel")
    tokens = p.el("#p-max-tokens")
    tokens.clear()
    tokens.send_keys("400")
    Select(p.el("#kb-select")).select_by_value("")
    p.ask("Write a long story about a lighthouse keeper, in ten paragraphs.")
    p.visible("#stop")
    p.until("some streamed text", lambda: len(p.assistant_messages()) >= 2
            and len(p.assistant_messages()[1].find_element(By.CSS_SELECTOR, ".body").text) > 20)
    p.el("#stop").click()
    msg = p.wait_answer_done(2)
    check("stopped" in msg.find_element(By.CSS_SELECTOR, ".stats").text, "Stop ends the answer: " +
          msg.find_element(By.CSS_SELECTOR, ".stats").text)
    check(p.el("#send").is_displayed(), "Send is back after Stop")
    p.shot("stopped")
    tokens.clear()
    tokens.send_keys("24")
    before = msg.find_element(By.CSS_SELECTOR, ".body").text
    p.el(".msg.assistant:last-child .regenerate").click()
    msg = p.wait_answer_done(2)
    after = msg.find_element(By.CSS_SELECTOR, ".body").text
    check(len(p.assistant_messages()) == 2 and after and "stopped" not in msg.find_element(By.CSS_SELECTOR, ".stats").text,
          "Regenerate replaces the last answer")
    print("regenerated:", after[:80].replace("\n", " "), "| before:", before[:40].replace("\n", " "))


def code_answer(p):
    tokens = p.el("#p-max-tokens")
    tokens.clear()
    tokens.send_keys("120")
    temperature = p.el("#p-temperature")
    temperature.clear()
    temperature.send_keys("0")
    p.ask("Show a Python function that reverses a string, as a ```python fenced code block.")
    msg = p.wait_answer_done(3)
    blocks = msg.find_elements(By.CSS_SELECTOR, ".body pre code")
    check(len(blocks) >= 1 and "def " in blocks[0].text, "the model's code block is rendered as code")
    p.shot("code")


def model_panel(p):
    p.until("context use", lambda: "tokens used" in p.el("#context-text").text)
    used = p.el("#context-text").text
    check(not used.startswith("0 of"), "the panel shows the context used: " + used)
    facts = p.el("#model-facts").text
    check("Parameters" in facts and "Context" in facts, "the panel shows the model's facts")
    p.shot("model-panel")


def reload_keeps_conversation(p, args):
    p.d.refresh()
    p.until("the conversation after reload", lambda: len(p.assistant_messages()) == 3)
    check(len(p.d.find_elements(By.CSS_SELECTOR, "#conversations .conv")) >= 1, "conversations are listed")
    check(p.d.find_elements(By.CSS_SELECTOR, ".msg.user")[0].text.find(args.question[:20]) >= 0, "the conversation survives a reload")


def reasoning_page(p, url):
    p.d.get(url + "/")
    p.until("the open page", lambda: not p.el("#login").is_displayed() and p.el("#model-name").text != "Model")
    # The fixture model follows one fixed chain of tokens: greedy decoding keeps to it.
    p.el("#model-toggle").click()
    temperature = p.visible("#p-temperature")
    temperature.clear()
    temperature.send_keys("0")
    p.el("#model-toggle").click()
    p.ask("What is 2+2?")
    msg = p.wait_answer_done(1)
    details = msg.find_element(By.CSS_SELECTOR, "details.reasoning")
    check(details.is_displayed() and details.get_attribute("open") is None, "the reasoning is shown folded")
    check("four" not in msg.find_element(By.CSS_SELECTOR, ".body").text, "the reasoning is not in the answer")
    p.shot("reasoning-folded")
    details.find_element(By.CSS_SELECTOR, "summary").click()
    check("four" in details.find_element(By.CSS_SELECTOR, ".thought").text, "unfolded, the reasoning reads")
    p.shot("reasoning")


def moe_page(p, url):
    p.d.get(url + "/")
    p.until("the open page", lambda: not p.el("#login").is_displayed() and p.el("#model-name").text != "Model")
    p.js("return fetch('/v1/completions', {method: 'POST', headers: {'Content-Type': 'application/json'},"
         " body: JSON.stringify({prompt: [1, 2, 3, 4, 5, 6, 7, 8], max_tokens: 8, temperature: 0})})"
         ".then(r => r.json())")
    p.js("return refreshModelPanel()")
    p.el("#model-toggle").click()
    p.visible("#moe")
    text = p.el("#moe-text").text
    check("experts per token" in text, "the MoE picture is captioned: " + text)
    lit = p.js("""const c = document.getElementById('moe-canvas'), d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                  let n = 0; for (let i = 0; i < d.length; i += 4) if (d[i + 2] > d[i] + 40) n++; return n;""")
    check(lit > 0, "the experts picture shows chosen experts (%d blue pixels)" % lit)
    p.shot("moe-experts")


def check_network_and_console(p, allowed_hosts):
    hosts = set()
    for entry in p.d.get_log("performance"):
        msg = json.loads(entry["message"])["message"]
        if msg.get("method") == "Network.requestWillBeSent":
            u = urlparse(msg["params"]["request"]["url"])
            if u.scheme in ("http", "https", "ws", "wss"):
                hosts.add(u.netloc)
    check(hosts and hosts <= allowed_hosts, "every request went to the server itself: %s" % sorted(hosts))
    errors = [e for e in p.d.get_log("browser") if e["level"] == "SEVERE" and "401" not in e["message"]
              and "favicon" not in e["message"]]
    check(not errors, "no errors in the console: %s" % errors)


def main():
    ap = argparse.ArgumentParser()
    for name in ("url", "user", "password", "kb", "document", "question", "expect", "screenshots"):
        ap.add_argument("--" + name, required=True)
    ap.add_argument("--reasoning-url")
    ap.add_argument("--moe-url")
    args = ap.parse_args()
    os.makedirs(args.screenshots, exist_ok=True)
    driver = start_browser()
    p = Page(driver, args.screenshots)
    try:
        sign_in(p, args)
        check_markdown(p)
        upload(p, args)
        cited_answer(p, args)
        stop_and_regenerate(p)
        code_answer(p)
        model_panel(p)
        reload_keeps_conversation(p, args)
        hosts = {urlparse(args.url).netloc}
        check_network_and_console(p, hosts)
        if args.reasoning_url:
            reasoning_page(p, args.reasoning_url)
            hosts.add(urlparse(args.reasoning_url).netloc)
        if args.moe_url:
            moe_page(p, args.moe_url)
            hosts.add(urlparse(args.moe_url).netloc)
        check_network_and_console(p, hosts)
        print("BROWSER TEST PASSED")
    except Exception:
        p.shot("error")
        raise
    finally:
        driver.quit()


if __name__ == "__main__":
    main()
