"""The web page at ``/``: drop (or choose) a query image, see the top-k with thumbnails, labels, distances, verdicts."""

PAGE_HTML = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>OML search</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
 body { font-family: system-ui, sans-serif; margin: 2rem; color: #222; }
 #drop { border: 2px dashed #888; border-radius: 8px; padding: 2rem; text-align: center; cursor: pointer; }
 #drop.over { background: #eef; }
 #query img { height: 120px; margin-top: 1rem; image-rendering: pixelated; }
 #results { display: flex; flex-wrap: wrap; gap: 1rem; margin-top: 1rem; }
 .match { border: 4px solid #ccc; border-radius: 6px; padding: .5rem; width: 170px; font-size: .85rem; }
 .match.same { border-color: #2a2; } .match.different { border-color: #c33; }
 .match img { width: 160px; height: 160px; object-fit: contain; background: #f4f4f4; }
 .error { color: #b00; font-weight: bold; }
 label { margin-right: 1rem; }
</style>
</head>
<body>
<h1>OML search</h1>
<p id="about">Loading...</p>
<div>
 <label>k <input id="k" type="number" min="1" max="100" value="5" style="width:4em"></label>
 <label>API key <input id="apikey" type="password" placeholder="(if the server needs one)"></label>
</div>
<div id="drop">Drop a query image here, or <label style="text-decoration:underline">choose one
 <input id="file" type="file" accept="image/*" style="display:none"></label></div>
<div id="query"></div>
<p id="status"></p>
<div id="results"></div>
<script>
const $ = (id) => document.getElementById(id);
const key = () => $("apikey").value || localStorage.getItem("omlApiKey") || "";
$("apikey").addEventListener("change", () => localStorage.setItem("omlApiKey", $("apikey").value));
function headers() { const k = key(); return k ? {"X-API-Key": k} : {}; }
function withKey(url) { const k = key(); return k ? url + "?api_key=" + encodeURIComponent(k) : url; }
function text(tag, value, cls) {
  const e = document.createElement(tag); e.textContent = value; if (cls) e.className = cls; return e;
}

fetch("/health").then(r => r.json()).then(h => {
  $("about").textContent = h.store_items + " items, " + h.metric + " distance" +
    (h.threshold === null ? ", no calibrated threshold" : ", same identity when distance < " + h.threshold.toFixed(4));
});

async function search(file) {
  $("query").replaceChildren(); $("results").replaceChildren();
  const preview = document.createElement("img"); preview.src = URL.createObjectURL(file); preview.alt = "query";
  $("query").appendChild(preview);
  $("status").className = ""; $("status").textContent = "Searching...";
  const form = new FormData(); form.append("image", file); form.append("k", $("k").value);
  let answer;
  try {
    const response = await fetch("/search", {method: "POST", body: form, headers: headers()});
    answer = await response.json();
    if (!response.ok) { $("status").className = "error"; $("status").textContent = answer.detail; return; }
  } catch (err) { $("status").className = "error"; $("status").textContent = String(err); return; }
  $("status").textContent = answer.matches.length + " matches (embedding " + answer.timing_ms.embed.toFixed(1) +
    " ms, search " + answer.timing_ms.search.toFixed(1) + " ms)";
  answer.matches.forEach((m, i) => {
    const card = document.createElement("div");
    card.className = "match " + (m.same === null ? "" : (m.same ? "same" : "different"));
    card.dataset.id = m.id;
    const img = document.createElement("img"); img.src = withKey(m.image); img.alt = "match " + (i + 1);
    card.appendChild(img);
    card.appendChild(text("div", "#" + (i + 1) + "  id " + m.id));
    const label = m.metadata.label === undefined ? "(no label)" : String(m.metadata.label);
    card.appendChild(text("div", "label " + label, "label"));
    card.appendChild(text("div", "distance " + m.distance.toFixed(4), "distance"));
    card.appendChild(text("div", m.same === null ? "no threshold" : (m.same ? "same" : "not same"), "verdict"));
    $("results").appendChild(card);
  });
}
$("file").addEventListener("change", (e) => { if (e.target.files.length) search(e.target.files[0]); });
const drop = $("drop");
drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => {
  e.preventDefault(); drop.classList.remove("over");
  if (e.dataTransfer.files.length) search(e.dataTransfer.files[0]);
});
</script>
</body>
</html>
"""
