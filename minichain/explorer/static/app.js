// minichain explorer: plain JavaScript, no framework and no build step.
//
// The page renders this node's REST API (/api/...). Everything that comes from the
// chain or from peers reaches the document through textContent, createTextNode or
// setAttribute -- never through innerHTML -- so a user agent such as
// "<img src=x onerror=...>" is shown as the text it is.
//
// Routing is on the path (/block/ID, /tx/ID, /address/A, /mempool, /peers, /forks,
// /network); links inside the page change the path with history.pushState, and the
// server answers every such path with this same page, so reloads and shared links work.
// Live updates arrive as server-sent events from /api/events.
"use strict";

(() => {
  const SVG_NS = "http://www.w3.org/2000/svg";
  const COIN = 100000000;

  // -- DOM helpers: the only way this script creates content -------------------------------

  function setAttrs(el, attrs) {
    if (!attrs) return;
    for (const [key, value] of Object.entries(attrs)) {
      if (value === null || value === undefined || value === false) continue;
      if (key.startsWith("on") && typeof value === "function") {
        el.addEventListener(key.slice(2), value);
      } else if (key === "data" && typeof value === "object") {
        for (const [k, v] of Object.entries(value)) el.dataset[k] = String(v);
      } else {
        el.setAttribute(key, value === true ? "" : String(value));
      }
    }
  }

  function append(el, children) {
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined || child === false) continue;
      el.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return el;
  }

  // Like el.append, but skips null, undefined and false (el.append would print "null").
  const put = (el, ...children) => append(el, children);

  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    setAttrs(el, attrs);
    return append(el, children);
  }

  function svg(tag, attrs, ...children) {
    const el = document.createElementNS(SVG_NS, tag);
    setAttrs(el, attrs);
    return append(el, children);
  }

  const enc = encodeURIComponent;

  // -- formatting ----------------------------------------------------------------------------

  function coins(units) {
    if (typeof units !== "number" || !Number.isFinite(units)) return "?";
    const sign = units < 0 ? "-" : "";
    const abs = Math.abs(units);
    const whole = Math.floor(abs / COIN);
    const frac = String(abs % COIN).padStart(8, "0");
    return `${sign}${whole}.${frac}`;
  }

  function rate(hashesPerSecond) {
    const r = Number(hashesPerSecond) || 0;
    for (const [unit, scale] of [["GH/s", 1e9], ["MH/s", 1e6], ["kH/s", 1e3]]) {
      if (r >= scale) return `${(r / scale).toFixed(1)} ${unit}`;
    }
    return `${Math.round(r)} H/s`;
  }

  function shortHash(hash, head = 10, tail = 6) {
    const text = String(hash);
    return text.length > head + tail + 1 ? `${text.slice(0, head)}…${text.slice(-tail)}` : text;
  }

  function utc(seconds) {
    return new Date(seconds * 1000).toISOString().replace("T", " ").slice(0, 19) + " UTC";
  }

  function ago(seconds) {
    const d = Math.round(Date.now() / 1000 - seconds);
    if (d < 5) return d < -120 ? `in ${-d} s` : "just now";
    if (d < 90) return `${d} s ago`;
    if (d < 90 * 60) return `${Math.round(d / 60)} min ago`;
    if (d < 36 * 3600) return `${Math.round(d / 3600)} h ago`;
    return `${Math.round(d / 86400)} d ago`;
  }

  function timeCell(seconds) {
    return h("span", { title: utc(seconds) }, ago(seconds));
  }

  // -- links ---------------------------------------------------------------------------------

  function link(path, label, attrs) {
    return h("a", Object.assign({ href: path }, attrs || {}), label);
  }
  const blockLink = (id, label) => link(`/block/${enc(id)}`, label ?? shortHash(id), { class: "mono", title: String(id) });
  const txLink = (txid, label) => link(`/tx/${enc(txid)}`, label ?? shortHash(txid), { class: "mono", title: String(txid) });
  const addrLink = (addr, label) => link(`/address/${enc(addr)}`, label ?? addr, { class: "mono" });

  function badge(text, kind) {
    return h("span", { class: `badge ${kind || text}` }, text);
  }

  // -- the API -------------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  async function api(path, base = "", timeoutMs = 8000) {
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), timeoutMs);
    let response;
    try {
      response = await fetch(base + path, { signal: abort.signal, headers: { Accept: "application/json" } });
    } catch (err) {
      throw new ApiError(0, `the node at ${base || location.host} did not answer (${err.name})`);
    } finally {
      clearTimeout(timer);
    }
    let body = null;
    try {
      body = await response.json();
    } catch (err) {
      body = null;
    }
    if (!response.ok) {
      throw new ApiError(response.status, (body && body.error) || response.statusText || "request failed");
    }
    return body;
  }

  // -- small pieces of page ------------------------------------------------------------------

  function table(headers, rows, attrs) {
    return h("table", attrs || null,
      h("thead", null, h("tr", null, headers.map((x) => h("th", null, x)))),
      h("tbody", null, rows));
  }

  // A table that grows a page at a time (the API's lists are paged: `limit` and a cursor
  // `after`). `first` is the first page, {items, next}; the button asks `more(next)` for
  // the following one. `state[key]` remembers how many more pages were shown, so a live
  // re-render shows as many again.
  async function pagedTable(headers, attrs, total, first, more, row, state, key, label) {
    const body = h("tbody");
    const count = h("span", { class: "muted count" });
    const button = h("button", { type: "button", class: "more" }, label);
    let next = first.next;
    const add = (items) => {
      for (const item of items) body.append(row(item));
      button.hidden = !next;
      count.textContent = `${body.children.length} of ${total} shown`;
    };
    const load = async () => {
      const pg = await more(next);
      next = pg.next;
      add(pg.items);
    };
    add(first.items);
    for (let i = 0; i < (state[key] || 0) && next; i++) await load();
    button.addEventListener("click", async () => {
      button.disabled = true;
      try {
        await load();
        state[key] = (state[key] || 0) + 1;
      } catch (err) {
        count.textContent = `could not load more: ${err.message}`;
      }
      button.disabled = false;
    });
    return h("div", { class: "paged" },
      h("table", attrs, h("thead", null, h("tr", null, headers.map((x) => h("th", null, x)))), body),
      h("p", { class: "pager" }, button, " ", count));
  }

  function facts(pairs) {
    return h("dl", { class: "facts" }, pairs.filter(Boolean).map(([k, v]) => [h("dt", null, k), h("dd", null, v)]));
  }

  function section(title, ...children) {
    return h("section", { class: "card" }, h("h2", null, title), children);
  }

  function empty(text) {
    return h("p", { class: "muted empty" }, text);
  }

  function notFound(box, title, detail, asked) {
    document.title = `${title} · minichain explorer`;
    box.replaceChildren(h("section", { class: "card notfound" },
      h("h1", null, title),
      asked !== undefined ? h("p", null, "You asked for ", h("code", { class: "asked" }, asked), ".") : null,
      h("p", { class: "reason" }, detail),
      h("p", null, "Look it up with the search box above, or go back to ", link("/", "the latest blocks"), ".")));
  }

  function showError(box, err, what, asked) {
    if (err instanceof ApiError && err.status === 404) {
      notFound(box, `${what} not found`, err.message, asked);
    } else if (err instanceof ApiError && err.status === 400) {
      const kinds = { Block: "a block hash or height", Transaction: "a transaction id", Address: "an address" };
      notFound(box, `That is not ${kinds[what] || "a valid id"}`, err.message, asked);
    } else if (err instanceof ApiError) {
      notFound(box, "The node could not answer", err.message, asked);
    } else {
      console.error(err);
      notFound(box, "Something went wrong in this page", String(err && err.message || err), asked);
    }
  }

  // -- the block tree (fork view) --------------------------------------------------------------

  const STATE_LABELS = {
    active: "active chain",
    contested: "a chain some nodes follow, not all",
    stale: "stale (orphaned): valid, on no active chain",
    "headers-only": "header only (data never fetched)",
    invalid: "invalid",
  };
  const NODE_COLORS = ["#2f6fde", "#d9480f", "#2b8a3e", "#9c36b5", "#c2255c", "#1098ad", "#e67700", "#495057"];

  // blocks: [{hash, parent, height, state, href, title, tips: [{label, color}]}]
  // mainTip: the hash whose ancestry is drawn straight on the first lane.
  function layoutTree(blocks, mainTip) {
    const byHash = new Map(blocks.map((b) => [b.hash, b]));
    const kids = new Map(blocks.map((b) => [b.hash, []]));
    const roots = [];
    for (const b of blocks) {
      if (b.parent && byHash.has(b.parent)) kids.get(b.parent).push(b);
      else roots.push(b);
    }
    const onMain = new Set();
    for (let w = byHash.get(mainTip); w; w = byHash.get(w.parent)) onMain.add(w.hash);
    const reach = new Map();
    for (const b of [...blocks].sort((x, y) => y.height - x.height)) {
      reach.set(b.hash, Math.max(b.height, ...kids.get(b.hash).map((k) => reach.get(k.hash))));
    }
    const order = (list) => list.sort((x, y) =>
      (onMain.has(y.hash) - onMain.has(x.hash)) ||
      (reach.get(y.hash) - reach.get(x.hash)) ||
      ((x.state === "stale") - (y.state === "stale")) ||
      (x.hash < y.hash ? -1 : 1));
    let lanes = 0;
    const stack = order(roots).reverse().map((b) => [b, -1]);
    while (stack.length) {
      const [b, lane] = stack.pop();
      b.lane = lane >= 0 ? lane : lanes++;
      const children = order(kids.get(b.hash));
      for (let i = children.length - 1; i >= 0; i--) stack.push([children[i], i === 0 ? b.lane : -1]);
    }
    return { lanes, byHash };
  }

  function drawTree(blocks, mainTip, opts) {
    const options = Object.assign({ legend: true, states: ["active", "stale", "headers-only", "invalid"] }, opts || {});
    if (!blocks.length) return empty("No blocks to draw.");
    const { lanes, byHash } = layoutTree(blocks, mainTip);
    const minH = Math.min(...blocks.map((b) => b.height));
    const maxH = Math.max(...blocks.map((b) => b.height));
    const DX = 66, DY = 50, W = 46, H = 24, PADX = 28, TOP = 26;
    const x = (b) => PADX + (b.height - minH) * DX;
    const y = (b) => TOP + b.lane * DY;
    const tipWidth = (tip) => 10 + tip.label.length * 6.4;
    const right = Math.max(...blocks.map((b) => x(b) + Math.max(W, (b.tips || []).reduce((s, t) => s + tipWidth(t) + 3, 0))));
    const width = right + PADX;
    const height = TOP + lanes * DY + 8;
    const root = svg("svg", {
      class: "tree", width, height, viewBox: `0 0 ${width} ${height}`, role: "img",
      "aria-label": `block tree from height ${minH} to ${maxH}`,
      data: { lanes, minHeight: minH, maxHeight: maxH },
    });
    const axis = svg("g", { class: "axis" });
    const step = maxH - minH > 60 ? 5 : 1;
    for (let ht = minH; ht <= maxH; ht++) {
      if (ht % step && ht !== maxH) continue;
      axis.append(svg("text", { x: PADX + (ht - minH) * DX + W / 2, y: 12, "text-anchor": "middle" }, String(ht)));
    }
    root.append(axis);
    const edges = svg("g", { class: "edges" });
    const nodes = svg("g", { class: "blocks" });
    for (const b of blocks) {
      const parent = b.parent ? byHash.get(b.parent) : null;
      const y1 = y(b) + H / 2;
      if (parent) {
        const x0 = x(parent) + W, y0 = y(parent) + H / 2, x1 = x(b);
        const d = y0 === y1 ? `M${x0} ${y0}H${x1}` : `M${x0} ${y0}C${x0 + DX / 2} ${y0} ${x1 - DX / 2} ${y1} ${x1} ${y1}`;
        edges.append(svg("path", { class: `edge st-${b.state}`, d }));
      } else if (b.height > 0) {
        edges.append(svg("path", { class: "edge stub", d: `M${x(b) - 20} ${y1}H${x(b)}` }));
      }
      const label = b.hash.slice(-4);
      const group = svg("a", { href: b.href, class: `blk st-${b.state}${b.fresh ? " fresh" : ""}`,
                               data: { hash: b.hash, height: b.height, state: b.state, lane: b.lane } },
        svg("title", null, b.title || `${b.height} ${b.hash}`),
        svg("rect", { x: x(b), y: y(b), width: W, height: H, rx: 5 }),
        svg("text", { x: x(b) + W / 2, y: y(b) + H / 2 + 4, "text-anchor": "middle" }, label));
      nodes.append(group);
      if (b.tips && b.tips.length) {
        let tx = x(b);
        for (const tip of b.tips) {
          const tw = tipWidth(tip);
          nodes.append(svg("g", { class: "tipmark", data: { node: tip.label, hash: b.hash, lane: b.lane } },
            svg("rect", { x: tx, y: y(b) + H + 3, width: tw, height: 15, rx: 7, fill: tip.color }),
            svg("text", { x: tx + tw / 2, y: y(b) + H + 14, "text-anchor": "middle" }, tip.label)));
          tx += tw + 3;
        }
      }
    }
    root.append(edges, nodes);
    const box = h("div", { class: "treebox" }, root);
    // Show the newest blocks: scroll to the right once the box is on the page.
    requestAnimationFrame(() => { box.scrollLeft = box.scrollWidth; });
    if (!options.legend) return box;
    const legend = h("ul", { class: "legend" }, options.states.map((st) =>
      h("li", null, svg("svg", { width: 18, height: 12, class: `swatch st-${st}` },
        svg("rect", { x: 1, y: 1, width: 16, height: 10, rx: 3 })), STATE_LABELS[st])));
    return h("div", null, box, legend);
  }

  // A node's /api/tree answer as drawable blocks.
  function treeBlocks(tree, seen) {
    return tree.blocks.map((b) => ({
      hash: b.hash, parent: b.parent, height: b.height, state: b.status,
      href: `/block/${b.hash}`, fresh: seen && !seen.has(b.hash),
      title: `height ${b.height}\n${b.hash}\n${STATE_LABELS[b.status] || b.status}\nmined ${utc(b.time)}`,
      tips: b.hash === tree.tip ? [{ label: "tip", color: NODE_COLORS[0] }] : [],
    }));
  }

  // -- pages -----------------------------------------------------------------------------------

  async function pageHome(box, view) {
    document.title = "minichain explorer";
    const treeSlot = h("div", { class: "slot" });
    const blocksSlot = h("div", { class: "slot", id: "latest-blocks" });
    const poolSlot = h("div", { class: "slot", id: "home-mempool" });
    put(box, 
      section("Fork view", h("p", { class: "muted" }, "The block tree around the tip, as it grows. ",
        link("/forks", "Larger view and chain tips")), treeSlot),
      h("div", { class: "columns" },
        section("Latest blocks", blocksSlot),
        section("Mempool", poolSlot)));
    const seenBlocks = new Set();
    const seenTree = new Set();
    let first = true;

    async function blocks() {
      const list = await api("/api/blocks?count=15");
      const rows = list.map((b) => h("tr", { class: !first && !seenBlocks.has(b.hash) ? "fresh" : null, data: { hash: b.hash } },
        h("td", null, link(`/block/${b.height}`, String(b.height), { class: "height" })),
        h("td", null, blockLink(b.hash)),
        h("td", null, timeCell(b.time)),
        h("td", { class: "num" }, String(b.tx_count ?? "?")),
        h("td", null, b.miner ? addrLink(b.miner, shortHash(b.miner, 8, 6)) : "?"),
        h("td", { class: "num" }, b.size !== undefined ? `${b.size} B` : "")));
      for (const b of list) seenBlocks.add(b.hash);
      if (view.alive) blocksSlot.replaceChildren(table(["Height", "Hash", "Time", "Txs", "Miner", "Size"], rows, { class: "blocks" }));
    }
    async function mempool() {
      const pool = await api("/api/mempool?limit=12");
      const items = pool.transactions.map((t) => h("li", null, txLink(t.txid), " ",
        h("span", { class: "muted" }, `${coins(t.fee)} fee`)));
      if (!view.alive) return;
      poolSlot.replaceChildren(
        h("p", null, h("strong", null, String(pool.size)), ` transaction${pool.size === 1 ? "" : "s"}, ${pool.bytes} bytes waiting. `,
          link("/mempool", "All")),
        items.length ? h("ul", { class: "plain" }, items) : empty("Nothing waiting to be mined."));
    }
    async function tree() {
      const t = await api("/api/tree?depth=12");
      const drawn = treeBlocks(t, first ? null : seenTree);
      for (const b of t.blocks) seenTree.add(b.hash);
      if (view.alive) treeSlot.replaceChildren(drawTree(drawn, t.tip, { legend: true }));
    }
    await Promise.all([blocks(), mempool(), tree()]);
    first = false;
    const later = debounce(async (parts) => {
      try {
        await Promise.all([...parts].map((p) => ({ blocks, mempool, tree })[p]()));
      } catch (err) {
        console.warn("refresh failed", err);
      }
    }, 150);
    view.onEvent = (kind) => {
      if (kind === "tip" || kind === "resync") later("blocks", "mempool", "tree");
      else if (kind === "block") later("tree");
      else if (kind === "tx") later("mempool");
    };
    view.every(15000, () => later("blocks"));  // keeps the "N s ago" column honest
  }

  async function pageBlock(box, view, id) {
    let b;
    try {
      b = await api(`/api/block/${enc(id)}`);
    } catch (err) {
      return showError(box, err, "Block", id);
    }
    document.title = `Block ${b.height} · minichain explorer`;
    const state = b.active ? badge("active chain", "active") : badge(b.status === "valid" ? "stale" : b.status, "stale");
    put(box, 
      h("h1", null, `Block ${b.height} `, state),
      h("p", { class: "mono hash" }, b.hash),
      b.active ? null : h("p", { class: "warn" },
        "This block is not on this node's active chain: its transactions are not confirmed by it."),
      section("Summary", facts([
        ["Height", String(b.height)],
        ["Confirmations", String(b.confirmations)],
        ["Time", `${utc(b.time)} (${ago(b.time)})`],
        ["Miner", b.miner ? addrLink(b.miner) : "unknown"],
        ["Transactions", String(b.tx_count ?? "?")],
        ["Size", b.size !== undefined ? `${b.size} bytes` : "header only"],
        ["Previous", b.previous ? blockLink(b.previous, b.previous) : "none (genesis)"],
        ["Next", b.next && b.next.length ? b.next.map((n, i) => [i ? ", " : "", blockLink(n)]) : "none yet"],
        ["Merkle root", h("span", { class: "mono" }, b.merkle_root)],
        ["Bits", h("span", { class: "mono" }, b.bits)],
        ["Nonce", String(b.nonce)],
        ["Chain work", h("span", { class: "mono" }, b.chainwork)],
        ["Status", b.status],
      ])),
      section(`Transactions (${(b.transactions || []).length})`,
        (b.transactions || []).length ? h("div", { class: "txlist" }, b.transactions.map(txSummary)) : empty("No transaction data here.")));
    view.live = ["tip"];
  }

  function txSummary(t) {
    const outs = h("ul", { class: "plain" }, t.outputs.map((o) =>
      h("li", null, addrLink(o.address, shortHash(o.address, 10, 6)), " ", h("span", { class: "amount" }, coins(o.value)))));
    const ins = t.coinbase
      ? h("p", { class: "muted" }, "coinbase: new coins and fees")
      : h("ul", { class: "plain" }, t.inputs.map((i) => h("li", null,
        i.address ? addrLink(i.address, shortHash(i.address, 10, 6)) : txLink(i.txid, `${shortHash(i.txid)}:${i.vout}`),
        " ", h("span", { class: "amount" }, i.value !== undefined ? coins(i.value) : "?"))));
    return h("div", { class: "tx", data: { txid: t.txid } },
      h("div", { class: "txid" }, txLink(t.txid, t.txid), t.coinbase ? [" ", badge("coinbase", "coinbase")] : null),
      h("div", { class: "flow" }, ins, h("span", { class: "arrow" }, "→"), outs));
  }

  async function pageTx(box, view, id) {
    let t;
    try {
      t = await api(`/api/tx/${enc(id)}`);
    } catch (err) {
      return showError(box, err, "Transaction", id);
    }
    document.title = `Transaction ${shortHash(t.txid)} · minichain explorer`;
    const outTotal = t.outputs.reduce((s, o) => s + o.value, 0);
    const inKnown = !t.coinbase && t.inputs.every((i) => typeof i.value === "number");
    const fee = t.fee ?? (inKnown ? t.inputs.reduce((s, i) => s + i.value, 0) - outTotal : null);
    const status = t.in_mempool
      ? badge("unconfirmed: in the mempool", "pending")
      : badge(`${t.confirmations} confirmation${t.confirmations === 1 ? "" : "s"}`, "active");
    put(box, 
      h("h1", null, "Transaction ", status),
      h("p", { class: "mono hash" }, t.txid),
      section("Summary", facts([
        ["Status", t.in_mempool ? "in the mempool, waiting to be mined" : ["in block ", blockLink(t.block_hash, String(t.block_height))]],
        ["Confirmations", h("span", { id: "confirmations" }, String(t.confirmations))],
        t.block_hash ? ["Block hash", blockLink(t.block_hash, t.block_hash)] : null,
        ["Size", `${t.size} bytes`],
        ["Total out", coins(outTotal)],
        ["Fee", t.coinbase ? "none (coinbase)" : fee === null ? "unknown" : coins(fee)],
        ["Lock time", String(t.locktime)],
      ])),
      h("div", { class: "columns even" },
        section(`Inputs (${t.inputs.length})`, table(["#", "Spends", "Address", "Value"], t.inputs.map((i, n) => h("tr", null,
          h("td", null, String(n)),
          i.coinbase !== undefined
            ? h("td", { colspan: 2 }, "coinbase (new coins) ", h("span", { class: "mono muted" }, shortHash(i.coinbase, 16, 8)))
            : [h("td", null, txLink(i.txid, `${shortHash(i.txid)}:${i.vout}`)), h("td", null, i.address ? addrLink(i.address) : "?")],
          h("td", { class: "num amount" }, i.value !== undefined ? coins(i.value) : "")
        )), { class: "inputs" })),
        section(`Outputs (${t.outputs.length})`, table(["#", "Address", "Value"], t.outputs.map((o) => h("tr", null,
          h("td", null, String(o.n)), h("td", null, addrLink(o.address)), h("td", { class: "num amount" }, coins(o.value)))),
        { class: "outputs" }))),
      h("details", { class: "card" }, h("summary", null, "Raw transaction (hex)"), h("pre", { class: "mono wrap" }, t.hex)));
    view.live = ["tip", "tx"];
  }

  const PAGE = 50;  // rows per page of the address and mempool lists

  async function pageAddress(box, view, id) {
    let a;
    try {
      a = await api(`/api/address/${enc(id)}?limit=${PAGE}`);
    } catch (err) {
      return showError(box, err, "Address", id);
    }
    document.title = `Address ${shortHash(a.address, 8, 6)} · minichain explorer`;
    const txCount = a.tx_count + a.pending_count;
    const more = (list) => async (after) => {
      const d = await api(`/api/address/${enc(id)}/${list}?limit=${PAGE}&after=${enc(after)}`);
      return { items: d[list], next: d.next };
    };
    const history = a.history.length ? await pagedTable(["Transaction", "Block", "Confirmations", "Change"],
      { class: "history" }, txCount, { items: a.history, next: a.history_next }, more("history"), (e) => h("tr", null,
        h("td", null, txLink(e.txid)),
        h("td", null, e.height === null ? badge("mempool", "pending") : blockLink(String(e.height), String(e.height))),
        h("td", { class: "num" }, String(e.confirmations)),
        h("td", { class: `num amount ${e.delta < 0 ? "neg" : "pos"}` }, coins(e.delta))),
      view.state, "historyPages", "Older transactions") : empty("No transactions.");
    const utxos = a.utxos.length ? await pagedTable(["Output", "Value", "Height", "Spendable"], { class: "utxos" },
      a.utxo_count, { items: a.utxos, next: a.utxos_next }, more("utxos"), (u) => h("tr", null,
        h("td", null, txLink(u.txid, `${shortHash(u.txid)}:${u.vout}`)),
        h("td", { class: "num amount" }, coins(u.value)),
        h("td", null, u.height === null ? "mempool" : blockLink(String(u.height), String(u.height))),
        h("td", null, u.spent_in_mempool ? "spent in the mempool" : u.mature ? "yes" : "immature coinbase")),
      view.state, "utxoPages", "More outputs") : empty("No unspent outputs.");
    put(box,
      h("h1", null, "Address"),
      h("p", { class: "mono hash" }, a.address),
      section("Balance", facts([
        ["Confirmed", h("span", { class: "amount", id: "balance-confirmed" }, coins(a.confirmed))],
        a.immature ? ["Immature (newly mined)", h("span", { class: "amount" }, coins(a.immature))] : null,
        ["Unconfirmed change", h("span", { class: "amount" }, coins(a.unconfirmed))],
        ["Unspent outputs", h("span", { id: "utxo-count" }, String(a.utxo_count))],
        ["Transactions", h("span", { id: "tx-count" }, String(txCount))],
      ])),
      section("History", history),
      section("Unspent outputs", utxos));
    view.live = ["tip", "tx"];
  }

  async function pageMempool(box, view) {
    document.title = "Mempool · minichain explorer";
    const pool = await api(`/api/mempool?limit=${PAGE}`);
    const more = async (after) => {
      const d = await api(`/api/mempool?limit=${PAGE}&after=${enc(after)}`);
      return { items: d.transactions, next: d.next };
    };
    put(box,
      h("h1", null, "Mempool"),
      h("p", null, `${pool.size} transaction${pool.size === 1 ? "" : "s"}, ${pool.bytes} bytes, best fee rate first.`),
      pool.transactions.length ? section("Waiting to be mined", await pagedTable(
        ["Transaction", "Fee", "Size", "Units per byte", "Waits for"], { class: "mempool" }, pool.size,
        { items: pool.transactions, next: pool.next }, more, (t) => h("tr", null,
          h("td", null, txLink(t.txid, t.txid)),
          h("td", { class: "num amount" }, coins(t.fee)),
          h("td", { class: "num" }, `${t.size} B`),
          h("td", { class: "num" }, Number(t.fee_rate).toFixed(1)),
          h("td", null, t.depends.length ? t.depends.map((d, i) => [i ? ", " : "", txLink(d)]) : "—")),
        view.state, "pages", "More")) : empty("The mempool is empty."));
    view.live = ["tip", "tx"];
  }

  async function pagePeers(box, view) {
    document.title = "Peers · minichain explorer";
    const p = await api("/api/peers");
    put(box, 
      h("h1", null, "Peers"),
      section(`Links (${p.peers.length})`, p.peers.length ? table(
        ["Address", "Direction", "User agent", "Start height", "State", "Score", "In flight", "Bytes in", "Bytes out"],
        p.peers.map((x) => h("tr", null,
          h("td", { class: "mono" }, x.address),
          h("td", null, x.inbound ? "inbound" : "outbound"),
          h("td", { class: "mono useragent" }, x.user_agent ?? "(handshake pending)"),
          h("td", { class: "num" }, String(x.start_height)),
          h("td", null, x.ready ? badge("ready", "active") : badge("connecting", "pending")),
          h("td", { class: "num" }, String(x.score)),
          h("td", { class: "num" }, String(x.in_flight)),
          h("td", { class: "num" }, String(x.bytes_in)),
          h("td", { class: "num" }, String(x.bytes_out)))),
        { class: "peers" }) : empty("No peers connected.")),
      h("div", { class: "columns even" },
        section("Known addresses", p.known_addresses.length
          ? h("ul", { class: "plain mono" }, p.known_addresses.map((a) => h("li", null, a))) : empty("None learned yet.")),
        section("Refused", p.bans.length || p.denied.length ? h("ul", { class: "plain" },
          p.bans.map((b) => h("li", null, h("span", { class: "mono" }, b.address), ` banned for ${b.seconds_left} s more`)),
          p.denied.map((d) => h("li", null, h("span", { class: "mono" }, d), " denied (testnet partition)"))) : empty("Nobody is banned or partitioned off."))));
    view.live = ["peer"];
  }

  async function pageForks(box, view) {
    document.title = "Forks · minichain explorer";
    const params = new URLSearchParams(location.search);
    const depth = Math.max(1, Math.min(500, parseInt(params.get("depth") || "30", 10) || 30));
    const [t, tips] = await Promise.all([api(`/api/tree?depth=${depth}`), api("/api/tips")]);
    const seen = view.state.seen;
    view.state.seen = new Set(t.blocks.map((b) => b.hash));
    put(box, 
      h("h1", null, "Forks"),
      h("p", { class: "muted" }, `Every block this node knows within ${depth} blocks of its tip (height ${t.height}). `,
        "Depth: ", [10, 30, 100, 300].map((d) => [link(`/forks?depth=${d}`, String(d), { class: d === depth ? "current" : null }), " "]),
        t.orphans ? ` · ${t.orphans} orphan block(s) waiting for their parent` : null),
      section("Block tree", drawTree(treeBlocks(t, seen), t.tip)),
      section("Chain tips", table(["Height", "Tip", "Branch length", "Status"], tips.map((x) => h("tr", null,
        h("td", null, String(x.height)), h("td", null, blockLink(x.hash, x.hash)),
        h("td", { class: "num" }, String(x.branchlen)), h("td", null, badge(x.status, x.status === "active" ? "active" : "stale")))),
      { class: "tips" })));
    view.live = ["tip", "block"];
  }

  // -- the network view: every node's tip on one tree -----------------------------------------

  // [NAME@]HOST:PORT -- the names that 'minichain testnet up' gives its nodes.
  const NODE_SPEC = /^(?:([A-Za-z0-9_-]{1,32})@)?((?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):\d{1,5})$/;

  function parseNodes(text) {
    const out = [];
    for (const part of (text || "").split(",").map((s) => s.trim()).filter(Boolean)) {
      const m = NODE_SPEC.exec(part);
      if (m && out.length < 32) out.push({ name: m[1] || `node${out.length}`, addr: m[2] });
    }
    return out;
  }

  async function pageNetwork(box, view) {
    document.title = "Network · minichain explorer";
    const params = new URLSearchParams(location.search);
    const nodes = parseNodes(params.get("nodes"));
    const depth = Math.max(1, Math.min(200, parseInt(params.get("depth") || "24", 10) || 24));
    if (!nodes.length) {
      const input = h("input", { name: "nodes", value: location.host, size: 60, spellcheck: "false" });
      put(box, h("h1", null, "Network"), section("Which nodes?",
        h("p", null, "List the API addresses (HOST:PORT) of the nodes to draw on one tree, separated by commas. ",
          "'minichain testnet up' prints this page's address with its nodes filled in."),
        h("form", { method: "get", action: "/network", class: "inline" }, input, h("button", { type: "submit" }, "Show"))));
      return;
    }
    const self = location.host;
    const entries = nodes.map(({ name, addr }, i) => ({
      addr, label: name, color: NODE_COLORS[i % NODE_COLORS.length],
      base: addr === self ? "" : `${location.protocol}//${addr}`, status: null, tree: null, error: null, source: null,
    }));
    const cards = h("div", { class: "nodecards" });
    const treeSlot = h("div", { class: "slot" });
    const summary = h("p", { class: "muted", id: "network-summary" });
    put(box, h("h1", null, "Network"), summary, cards, section("Every node's tip on one tree", treeSlot));
    const seen = new Set();
    let first = true;

    async function load(entry) {
      try {
        const [status, tree] = await Promise.all([api("/api/status", entry.base, 4000), api(`/api/tree?depth=${depth}`, entry.base, 4000)]);
        entry.status = status;
        entry.tree = tree;
        entry.error = null;
      } catch (err) {
        entry.error = err.message;
        entry.status = null;
        entry.tree = null;
      }
    }

    function render() {
      if (!view.alive) return;
      cards.replaceChildren(...entries.map((e) => h("div", { class: `nodecard${e.error ? " down" : ""}`, data: { node: e.label } },
        h("div", { class: "nodename" }, h("span", { class: "dot", style: null, data: { color: e.color } }), e.label, " ",
          h("a", { href: `${e.base || ""}/`, class: "mono muted" }, e.addr)),
        e.error ? h("p", { class: "warn" }, "unreachable: ", e.error) : facts([
          ["Height", String(e.status.height)],
          ["Tip", h("span", { class: "mono" }, shortHash(e.status.tip, 8, 6))],
          ["Peers", String(e.status.peers)],
          ["Mining", e.status.mining ? `yes, ${rate(e.status.hashrate)}` : "no"],
          ["Mempool", String(e.status.mempool.size)],
        ]))));
      // Colour the dots without inline style attributes (the page's CSP forbids them).
      for (const dot of cards.querySelectorAll(".dot")) dot.style.background = dot.dataset.color;
      const up = entries.filter((e) => e.tree);
      const merged = new Map();
      up.forEach((e) => {
        for (const b of e.tree.blocks) {
          let m = merged.get(b.hash);
          if (!m) {
            m = { hash: b.hash, parent: b.parent, height: b.height, time: b.time, per: new Map(), tips: [] };
            merged.set(b.hash, m);
          }
          m.per.set(e.label, { status: b.status, entry: e });
        }
      });
      for (const e of up) {
        const m = merged.get(e.tree.tip);
        if (m) m.tips.push({ label: e.label, color: e.color });
      }
      let best = null;
      for (const e of up) if (!best || BigInt(e.tree.chainwork) > BigInt(best.tree.chainwork)) best = e;
      const blocks = [...merged.values()].map((m) => {
        const statuses = [...m.per.values()].map((v) => v.status);
        const activeOn = [...m.per.entries()].filter(([, v]) => v.status === "active").map(([k]) => k);
        let state;
        if (activeOn.length === up.length) state = "active";
        else if (activeOn.length) state = "contested";
        else if (statuses.includes("stale")) state = "stale";
        else if (statuses.includes("invalid")) state = "invalid";
        else state = "headers-only";
        const holder = [...m.per.values()].find((v) => v.status === "active") || [...m.per.values()][0];
        return {
          hash: m.hash, parent: m.parent, height: m.height, state, tips: m.tips, fresh: !first && !seen.has(m.hash),
          href: `${holder.entry.base}/block/${m.hash}`,
          title: `height ${m.height}\n${m.hash}\n${STATE_LABELS[state]}\n` +
            [...m.per.entries()].map(([k, v]) => `${k}: ${v.status}`).join("\n"),
        };
      });
      for (const b of blocks) seen.add(b.hash);
      first = false;
      const tipsets = new Set(up.map((e) => e.tree.tip));
      summary.replaceChildren(`${up.length} of ${entries.length} nodes answering; `,
        tipsets.size <= 1 ? "all on the same tip." : `${tipsets.size} different tips: the network is split.`);
      summary.dataset.tips = String(tipsets.size);
      treeSlot.replaceChildren(best ? drawTree(blocks, best.tree.tip,
        { states: ["active", "contested", "stale", "headers-only", "invalid"] }) : empty("No node answered."));
    }

    const rerender = debounce(render, 80);
    const refresh = async (entry) => { await load(entry); rerender(); };
    await Promise.all(entries.map(load));
    render();
    // Live: each node's own event stream, and a slow poll for what streams do not say
    // (a node coming back, a stream that cannot be opened).
    for (const e of entries) {
      const again = debounce(() => refresh(e), 120);
      const source = new EventSource(`${e.base}/api/events`);
      for (const kind of ["tip", "block", "peer", "resync"]) source.addEventListener(kind, again);
      e.source = source;
    }
    view.every(3000, () => entries.forEach((e) => refresh(e)));
    view.cleanups.push(() => entries.forEach((e) => e.source && e.source.close()));
  }

  // -- router, live updates and the status bar ------------------------------------------------

  function debounce(fn, ms) {
    let timer = null;
    let pending = new Set();
    return (...parts) => {
      parts.forEach((p) => pending.add(p));
      clearTimeout(timer);
      timer = setTimeout(() => {
        const batch = pending;
        pending = new Set();
        fn(batch);
      }, ms);
    };
  }

  const ROUTES = [
    [/^\/$/, pageHome],
    [/^\/block\/([^/]+)$/, pageBlock],
    [/^\/tx\/([^/]+)$/, pageTx],
    [/^\/address\/([^/]+)$/, pageAddress],
    [/^\/mempool$/, pageMempool],
    [/^\/peers$/, pagePeers],
    [/^\/forks$/, pageForks],
    [/^\/network$/, pageNetwork],
  ];

  let current = null;

  function newView(render, arg) {
    const view = {
      alive: true, live: null, onEvent: null, timers: [], cleanups: [], state: {}, render, arg,
      every(ms, fn) { this.timers.push(setInterval(fn, ms)); },
      close() {
        this.alive = false;
        this.timers.forEach(clearInterval);
        this.cleanups.forEach((fn) => fn());
      },
    };
    return view;
  }

  async function route() {
    const main = document.getElementById("main");
    const path = location.pathname;
    if (current) current.close();
    for (const a of document.querySelectorAll("header nav a")) {
      const here = a.getAttribute("href");
      a.classList.toggle("current", here === "/" ? path === "/" || /^\/(block|tx|address)\//.test(path) : path.startsWith(here));
    }
    let page = null;
    let arg = null;
    for (const [pattern, fn] of ROUTES) {
      const m = pattern.exec(path);
      if (m) {
        page = fn;
        try {
          arg = m[1] !== undefined ? decodeURIComponent(m[1]) : null;
        } catch (err) {
          arg = m[1];
        }
        break;
      }
    }
    const view = newView(page, arg);
    current = view;
    const box = h("div", { class: "page" });
    if (!page) {
      notFound(box, "Page not found", `There is no page at ${path}.`);
    } else {
      try {
        await page(box, view, arg);
      } catch (err) {
        showError(box, err, "Page");
      }
    }
    if (current !== view) return;
    main.replaceChildren(box);
    main.dataset.page = page ? page.name : "notfound";
  }

  // Re-render a live page in place (keeping the scroll position) when its events arrive.
  const rerenderCurrent = debounce(async () => {
    const view = current;
    if (!view || !view.render || view.onEvent) return;
    const fresh = newView(view.render, view.arg);
    fresh.state = view.state;
    const box = h("div", { class: "page" });
    try {
      await view.render(box, fresh, view.arg);
    } catch (err) {
      fresh.close();
      return;  // keep what is shown; the next event tries again
    }
    if (current !== view) {
      fresh.close();
      return;
    }
    view.close();
    current = fresh;
    const y = window.scrollY;
    document.getElementById("main").replaceChildren(box);
    window.scrollTo(0, y);
  }, 200);

  function dispatch(kind, data) {
    refreshStatus();
    const view = current;
    if (!view) return;
    if (view.onEvent) view.onEvent(kind, data);
    else if (view.live && (view.live.includes(kind) || kind === "resync")) rerenderCurrent();
  }

  const refreshStatus = debounce(async () => {
    const bar = document.getElementById("statusbar");
    try {
      const s = await api("/api/status");
      bar.replaceChildren();
      append(bar, [
        h("span", null, badge(s.network, "network")),
        h("span", null, "height ", h("strong", { id: "status-height" }, String(s.height))),
        h("span", null, "tip ", blockLink(s.tip, shortHash(s.tip, 8, 6))),
        h("span", null, "peers ", h("strong", null, String(s.peers))),
        h("span", null, "mempool ", h("strong", null, String(s.mempool.size))),
        h("span", null, s.mining ? `mining ${rate(s.hashrate)}` : "not mining"),
        s.orphans ? h("span", null, `${s.orphans} orphans`) : null,
        h("span", { class: "muted" }, s.version)]);
    } catch (err) {
      bar.replaceChildren(h("span", { class: "warn" }, err.message));
    }
  }, 100);

  function startEvents() {
    const live = document.getElementById("live");
    const source = new EventSource("/api/events");
    const on = () => { live.textContent = "live"; live.className = "live on"; };
    source.addEventListener("open", on);
    source.addEventListener("hello", on);
    source.addEventListener("error", () => { live.textContent = "reconnecting"; live.className = "live off"; });
    for (const kind of ["tip", "block", "tx", "peer", "resync"]) {
      source.addEventListener(kind, (ev) => {
        let data = {};
        try {
          data = JSON.parse(ev.data);
        } catch (err) {
          data = {};
        }
        dispatch(kind, data);
      });
    }
  }

  function navigate(url) {
    history.pushState(null, "", url);
    window.scrollTo(0, 0);
    route();
  }

  document.addEventListener("click", (ev) => {
    if (ev.defaultPrevented || ev.button !== 0 || ev.metaKey || ev.ctrlKey || ev.shiftKey || ev.altKey) return;
    const a = ev.target.closest("a");
    if (!a || a.hasAttribute("download") || (a.getAttribute("target") || "") !== "") return;
    const href = a.getAttribute("href");
    if (!href) return;
    const url = new URL(href, location.href);
    if (url.origin !== location.origin || url.pathname.startsWith("/api/") || url.pathname.startsWith("/explorer/")) return;
    ev.preventDefault();
    navigate(url.pathname + url.search);
  });

  window.addEventListener("popstate", route);

  async function search(ev) {
    ev.preventDefault();
    const input = document.getElementById("search-input");
    const q = input.value.trim();
    if (!q) return;
    input.value = "";
    if (/^\d+$/.test(q)) return navigate(`/block/${q}`);
    if (/^[0-9a-fA-F]{64}$/.test(q)) {
      try {
        await api(`/api/block/${q}`);
        return navigate(`/block/${q}`);
      } catch (err) {
        return navigate(`/tx/${q}`);
      }
    }
    navigate(`/address/${enc(q)}`);
  }

  document.addEventListener("DOMContentLoaded", () => {
    document.getElementById("search").addEventListener("submit", search);
    refreshStatus();
    setInterval(refreshStatus, 10000);
    startEvents();
    route();
  });
})();
