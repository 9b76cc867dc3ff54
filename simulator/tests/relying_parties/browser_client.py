#!/usr/bin/env python3
"""A browser for the relying-party tests: Debian's Chromium, headless,
driven through the DevTools protocol over a pipe (--remote-debugging-pipe:
no port is opened), one page kept open for the whole session as a user's
tab is.

    browser_client.py CHROMIUM USER_DATA_DIR URL

Reads commands from standard input, one per line, and answers each with
one JSON line on standard output:

    load PNG [TEXT]
               navigate to URL (a new request, as a reload is); answer
               {"text": the page's text} and write a screenshot to PNG,
               scrolled to the first TEXT on the page if given, or
               {"error": Chromium's net error} if the page did not load,
               or {"died": the signal} if the browser process ended
    quit       close the browser

Chromium's own output goes to standard error. Every wait is bounded: a
command that takes more than TIMEOUT seconds is answered with
{"error": "timeout"}.
"""

import base64
import fcntl
import json
import os
import select
import subprocess
import sys
import time

TIMEOUT = 60
# The longest message read from Chromium (a screenshot is the largest).
MAX_MESSAGE = 64 << 20


class Browser:
    def __init__(self, chromium, user_data_dir):
        # Chromium reads commands on fd 3 and writes to fd 4.
        to_chrome_r, self.to_chrome = os.pipe()
        self.from_chrome, from_chrome_w = os.pipe()
        # Out of the way of 3 and 4 before the child moves them there.
        high = [dup_above(fd, 10) for fd in (to_chrome_r, from_chrome_w)]

        def pipes():
            os.dup2(high[0], 3)
            os.dup2(high[1], 4)

        self.process = subprocess.Popen(
            [
                chromium,
                "--headless",
                # The tests run as root in CI, where Chromium's sandbox
                # cannot start; nothing here is untrusted content.
                "--no-sandbox",
                "--remote-debugging-pipe",
                "--user-data-dir=" + user_data_dir,
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--window-size=1000,700",
                "about:blank",
            ],
            stdin=subprocess.DEVNULL,
            stdout=sys.stderr,
            stderr=sys.stderr,
            pass_fds=(3, 4),
            preexec_fn=pipes,
        )
        for fd in high:
            os.close(fd)
        self.next_id = 0
        self.buffer = b""
        self.events = []

    def send(self, method, params=None, session=None):
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self.to_chrome, json.dumps(message).encode() + b"\0")
        return self.next_id

    def receive(self, deadline):
        """The next message, or None at the deadline."""
        while b"\0" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select([self.from_chrome], [], [], left)
            if not ready:
                return None
            chunk = os.read(self.from_chrome, 1 << 16)
            if not chunk:
                raise EOFError("Chromium closed its pipe")
            self.buffer += chunk
            if len(self.buffer) > MAX_MESSAGE:
                raise ValueError("a message larger than any Chromium sends")
        message, _, self.buffer = self.buffer.partition(b"\0")
        return json.loads(message)

    def call(self, method, params=None, session=None, deadline=None):
        deadline = deadline or time.monotonic() + TIMEOUT
        wanted = self.send(method, params, session)
        while True:
            message = self.receive(deadline)
            if message is None:
                raise TimeoutError(method)
            if message.get("id") == wanted:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]
            self.events.append(message)

    def wait_for(self, method, session, deadline):
        while True:
            for i, event in enumerate(self.events):
                if event.get("method") == method and event.get("sessionId") == session:
                    del self.events[i]
                    return event
            message = self.receive(deadline)
            if message is None:
                raise TimeoutError(method)
            self.events.append(message)


def dup_above(fd, lowest):
    """`fd` moved to a descriptor number of at least `lowest`."""
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD, lowest)
    os.close(fd)
    return moved


def main():
    chromium, user_data_dir, url = sys.argv[1:4]
    browser = Browser(chromium, user_data_dir)
    targets = browser.call("Target.getTargets")["targetInfos"]
    page = next(t for t in targets if t["type"] == "page")
    session = browser.call(
        "Target.attachToTarget", {"targetId": page["targetId"], "flatten": True}
    )["sessionId"]
    browser.call("Page.enable", session=session)
    for line in sys.stdin:
        words = line.split(maxsplit=2)
        if words == ["quit"]:
            break
        if len(words) < 2 or words[0] != "load":
            answer = {"error": f"unknown command {line.strip()!r}"}
        else:
            focus = words[2] if len(words) == 3 else None
            try:
                answer = load(browser, session, url, words[1], focus)
            except (EOFError, BrokenPipeError):
                try:
                    code = browser.process.wait(10)
                except subprocess.TimeoutExpired:
                    code = None
                print(json.dumps({"died": -code if code and code < 0 else code}), flush=True)
                return
        print(json.dumps(answer), flush=True)
    try:
        browser.call("Browser.close", deadline=time.monotonic() + 10)
    except (TimeoutError, EOFError, RuntimeError):
        pass
    try:
        browser.process.wait(10)
    except subprocess.TimeoutExpired:
        browser.process.kill()


# Scrolls the first occurrence of a text on the page to the top.
SCROLL_TO = """(text) => {
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const at = node.data.indexOf(text);
    if (at >= 0) {
      const range = document.createRange();
      range.setStart(node, at);
      range.setEnd(node, at + text.length);
      window.scrollTo(0, range.getBoundingClientRect().top + window.scrollY - 8);
      return true;
    }
  }
  return false;
}"""


def load(browser, session, url, png, focus):
    deadline = time.monotonic() + TIMEOUT
    try:
        # A fresh navigation every time: the previous page is not reused.
        result = browser.call(
            "Page.navigate", {"url": url}, session=session, deadline=deadline
        )
        if result.get("errorText"):
            return {"error": result["errorText"]}
        browser.wait_for("Page.loadEventFired", session, deadline)
        text = browser.call(
            "Runtime.evaluate",
            {"expression": "document.body.innerText", "returnByValue": True},
            session=session,
            deadline=deadline,
        )["result"].get("value", "")
        if focus:
            browser.call(
                "Runtime.evaluate",
                {"expression": f"({SCROLL_TO})({json.dumps(focus)})", "returnByValue": True},
                session=session,
                deadline=deadline,
            )
        shot = browser.call(
            "Page.captureScreenshot", {"format": "png"}, session=session, deadline=deadline
        )
        with open(png, "wb") as out:
            out.write(base64.b64decode(shot["data"]))
        return {"text": text}
    except TimeoutError:
        return {"error": "timeout"}


if __name__ == "__main__":
    main()
