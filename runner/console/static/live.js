// coatcheck console: follow a running run (server-sent events from /runs/{id}/events).
// Everything received is attacker-controlled text: it is only ever added as text nodes
// (textContent), never as HTML.
(function () {
  "use strict";
  var live = document.getElementById("live");
  if (!live || !window.EventSource) {
    return;
  }
  var output = document.getElementById("output");
  var transcript = document.getElementById("transcript");

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) {
      node.className = cls;
    }
    if (text !== undefined && text !== null) {
      node.textContent = String(text);
    }
    return node;
  }

  function part(p) {
    var error = p.error ? " error-text" : "";
    if (p.kind === "text") {
      return el("pre", "text" + error, p.text);
    }
    var kinds = { thinking: "thinking", tool_call: "tool-call", tool_result: "tool-result" };
    var details = el("details", (kinds[p.kind] || "tool-result") + error);
    details.appendChild(el("summary", null, p.title || p.kind));
    details.appendChild(el("pre", null, p.text));
    return details;
  }

  function block(b) {
    var role = ["user", "assistant", "system"].indexOf(b.role) >= 0 ? b.role : "system";
    var div = el("div", "message " + role);
    div.appendChild(el("span", "role", role));
    (b.parts || []).forEach(function (p) {
      div.appendChild(part(p));
    });
    return div;
  }

  var url = "/runs/" + encodeURIComponent(live.dataset.run) + "/events?output=" +
    encodeURIComponent(live.dataset.outputOffset) + "&transcript=" +
    encodeURIComponent(live.dataset.transcriptLines);
  // Each event's id says how far the stream got; a reconnect sends it back (Last-Event-ID).
  var source = new EventSource(url);
  source.addEventListener("output", function (e) {
    if (output) {
      output.appendChild(document.createTextNode(JSON.parse(e.data)));
    }
  });
  source.addEventListener("transcript", function (e) {
    if (transcript) {
      JSON.parse(e.data).forEach(function (b) {
        transcript.appendChild(block(b));
      });
    }
  });
  source.addEventListener("end", function (e) {
    source.close();
    var status = JSON.parse(e.data).status;
    live.textContent = "The run ended (" + status + "); reload the page for its full record.";
    live.className = "ended";
  });
})();
