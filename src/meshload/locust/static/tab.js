// meshload's bar on the meshload tab of Locust's web UI: the state of the test and links to the last
// test's reports. Locust's tables show text only and stop polling when a test stops, just before the
// reports are written, so this bar asks meshload/live.json itself. It lives outside Locust's React
// root and touches nothing of Locust's page; it shows only while the meshload tab is selected.
(() => {
  "use strict";
  const base = new URL(".", document.currentScript.src).pathname; // ".../meshload/"
  const bar = document.createElement("div");
  bar.id = "meshload-bar";
  bar.hidden = true;
  bar.style.cssText =
    "position:fixed;left:0;right:0;bottom:0;z-index:2000;padding:8px 16px;font:14px system-ui,sans-serif;" +
    "background:#1f2933;color:#f5f7fa;border-top:3px solid #7b8794;display:flex;gap:12px;flex-wrap:wrap;align-items:center";
  document.body.appendChild(bar);

  const text = (tag, content, style) => {
    const element = document.createElement(tag);
    element.textContent = content;
    if (style) element.style.cssText = style;
    return element;
  };

  let shown = "";
  function render(live) {
    const fingerprint = JSON.stringify(live);
    if (fingerprint === shown) return; // unchanged: keep the links the user may be about to click
    shown = fingerprint;
    const parts = [text("strong", "meshload")];
    if (live.state === "running") parts.push(text("span", `test ${live.run_id} running`));
    else if (live.state === "finishing") parts.push(text("span", "test stopped: merging the last records"));
    const last = live.last;
    if (last) {
      const colour = last.valid ? "#3ebd93" : "#ef4e4e";
      bar.style.borderTopColor = colour;
      parts.push(text("span", `last test ${last.run_id}:`));
      parts.push(text("span", last.verdict, `color:${colour}`));
      const links = document.createElement("span");
      links.id = "meshload-reports";
      for (const report of last.reports) {
        const link = text("a", report.title, "color:#9fb3c8;margin-right:10px");
        link.href = report.href;
        link.target = "_blank";
        link.rel = "noopener";
        links.appendChild(link);
      }
      parts.push(links);
    } else if (live.state === "idle") {
      parts.push(text("span", "no test yet: start one, the reports' links appear here when it stops"));
    }
    bar.replaceChildren(...parts);
  }

  async function refresh() {
    const onTab = new URLSearchParams(window.location.search).get("tab") === "meshload";
    bar.hidden = !onTab;
    if (!onTab) return;
    try {
      const answer = await fetch(base + "live.json", { cache: "no-store", credentials: "same-origin" });
      if (answer.ok) render(await answer.json());
    } catch (error) {
      shown = "";
      bar.replaceChildren(text("span", `meshload: ${error}`));
    }
  }

  refresh();
  setInterval(refresh, 1000);
})();
