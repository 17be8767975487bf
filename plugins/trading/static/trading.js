// The trading pages, live: a symbol's price, chart, Watch and trade panel; the markets home's
// watchlist and search; the portfolio's Cancel buttons. The server drew every figure already;
// this keeps them current over the realtime channel (trading.subscribe → trading.tick) and talks
// to the JSON API (docs/trading.md). Money from the API is in cents, prices in dollars,
// quantities are decimal strings.
(function () {
  "use strict";
  const realtime = window.everything && window.everything.realtime;
  const csrf = (document.querySelector('meta[name="csrf-token"]') || {}).content || "";

  // Formatting, as the server's templates do it (plugins/trading/pages.py) ------------------------

  function price(value) {
    if (value === null || value === undefined) return "—";
    const digits = Math.abs(value) >= 1 ? 2 : 4;
    return value.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: Math.abs(value) >= 1 ? 2 : 6 });
  }
  function money(cents) {
    if (cents === null || cents === undefined) return "—";
    const text = "$" + (Math.abs(cents) / 100).toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
    return cents < 0 ? "−" + text : text;
  }
  function signed(value, digits) {
    const text = Math.abs(value).toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
    return (value > 0 ? "+" : value < 0 ? "−" : "") + text;
  }
  function direction(value) { return !value ? "flat" : value > 0 ? "up" : "down"; }
  function setDirection(element, value) {
    element.classList.remove("up", "down", "flat");
    element.classList.add(direction(value));
  }
  function quantity(qty) { return qty.indexOf(".") >= 0 ? qty.replace(/0+$/, "").replace(/\.$/, "") : qty; }
  function asOf(quote) { return quote.as_of.slice(11, 19) + " UTC"; }

  // The JSON API ---------------------------------------------------------------------------------------

  // A request to the API: the parsed answer, or a thrown {status, error} with the server's message.
  async function api(method, path, body) {
    const headers = { Accept: "application/json", "X-CSRF-Token": csrf };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let response;
    try {
      response = await fetch(path, { method, headers, credentials: "same-origin", body: body === undefined ? undefined : JSON.stringify(body) });
    } catch (error) {
      throw { status: 0, error: { code: "network", message: "The connection dropped. Check your network and try again." } };
    }
    if (response.status === 204) return null;
    let answer = null;
    try { answer = await response.json(); } catch (error) { answer = null; }
    if (!response.ok) {
      throw { status: response.status, error: (answer && answer.error) || { code: "http_" + response.status, message: "Something went wrong (" + response.status + "). Try again." } };
    }
    return answer;
  }

  // Follow ``symbols`` live: ``onQuotes`` gets every quote of the reply and of each tick. It
  // subscribes again after the connection comes back, since the server forgets a closed one.
  function follow(symbols, onQuotes, onTier) {
    if (!realtime || !symbols.length) return;
    let dropped = false;
    const subscribe = () => realtime.request({ type: "trading.subscribe", symbols })
      .then((reply) => { if (onTier) onTier(reply); onQuotes(reply.quotes || []); })
      .catch(() => {});
    realtime.on("trading.tick", (message) => onQuotes(message.quotes || []));
    realtime.on("close", () => { dropped = true; });
    realtime.on("open", () => { if (dropped) { dropped = false; subscribe(); } });
    subscribe();
  }

  function flash(element, up) {
    element.classList.remove("flash-up", "flash-down");
    void element.offsetWidth;  // restart the animation
    element.classList.add(up ? "flash-up" : "flash-down");
  }

  // The tier marks ("Delayed 15 min" / "Real-time") follow a plan change at once.
  function showTier(delayed, minutes) {
    document.querySelectorAll("[data-trading-tier]").forEach((mark) => {
      mark.textContent = delayed ? "Delayed " + minutes + " min" : "Real-time";
      mark.classList.toggle("trading-delayed", delayed);
      mark.classList.toggle("trading-realtime", !delayed);
    });
  }

  // One symbol -----------------------------------------------------------------------------------------

  function symbolPage(root) {
    const data = JSON.parse(root.querySelector("[data-trading-data]").textContent);
    const symbol = data.symbol;
    let quote = data.quote;
    const chart = drawChart(root, symbol);

    function showQuote(next) {
      const priceBox = root.querySelector("[data-trading-price]");
      if (next.price !== quote.price) flash(priceBox, next.price > quote.price);
      quote = next;
      priceBox.textContent = price(next.price);
      const change = root.querySelector("[data-trading-change]");
      change.textContent = signed(next.change, next.price >= 1 ? 2 : 4) + " (" + signed(next.change_pct, 2) + "%)";
      setDirection(change, next.change);
      const when = root.querySelector("[data-trading-asof]");
      when.textContent = asOf(next);
      when.setAttribute("datetime", next.as_of);
      root.querySelector("[data-trading-market]").textContent = next.market_open ? "Market open" : "Market closed";
      ["open", "high", "low", "previous_close"].forEach((field) => {
        const cell = root.querySelector('[data-field="' + field + '"]');
        if (cell) cell.textContent = price(next[field]);
      });
      showTier(next.delayed, next.delay_minutes);
      chart.tick(next);
      estimate();
    }

    follow([symbol], (quotes) => quotes.filter((q) => q.symbol === symbol).forEach(showQuote));

    // Watch / Unwatch
    const watch = root.querySelector("[data-trading-watch]");
    let watched = data.watched;
    watch.addEventListener("click", async () => {
      watch.disabled = true;
      try {
        await api(watched ? "DELETE" : "PUT", "/api/trading/watchlist/" + encodeURIComponent(symbol));
        watched = !watched;
        watch.textContent = watched ? "Unwatch" : "Watch";
        watch.setAttribute("aria-pressed", String(watched));
        watch.classList.toggle("watching", watched);
      } catch (failure) {
        chart.say(failure.error.message);
      } finally {
        watch.disabled = false;
      }
    });

    // The trade panel
    const form = root.querySelector("[data-trading-order]");
    const submit = form.querySelector("[data-trading-submit]");
    const failed = form.querySelector("[data-trading-order-error]");
    const done = form.querySelector("[data-trading-order-done]");
    // The order being placed: the same id on every retry of the same terms, so that a double
    // click or a retry after a dropped connection never places it twice.
    let clientOrderId = null;
    let busy = false;

    function newId() {
      if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
      const bytes = crypto.getRandomValues(new Uint8Array(16));
      return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
    }
    function values() {
      const fields = new FormData(form);
      return {
        side: fields.get("side"),
        qty: String(fields.get("qty") || "").trim(),
        type: fields.get("type"),
        time_in_force: fields.get("time_in_force"),
        limit_price: String(fields.get("limit_price") || "").trim(),
        stop_price: String(fields.get("stop_price") || "").trim(),
      };
    }
    function estimate() {
      const v = values();
      const qty = Number(v.qty);
      const at = v.type === "limit" && v.limit_price ? Number(v.limit_price) : v.type === "stop" && v.stop_price ? Number(v.stop_price) : quote.price;
      const box = form.querySelector("[data-trading-estimate]");
      box.textContent = qty > 0 && isFinite(qty) && isFinite(at) ? "Estimated " + (v.side === "buy" ? "cost" : "proceeds") + ": " + money(Math.round(qty * at * 100)) : "";
    }
    function clearErrors() {
      failed.hidden = true;
      form.querySelectorAll("[data-error-for]").forEach((p) => { p.hidden = true; p.textContent = ""; });
      form.querySelectorAll("[aria-invalid]").forEach((input) => input.removeAttribute("aria-invalid"));
    }
    function showError(error) {
      const field = error.field && form.querySelector('[data-error-for="' + error.field + '"]');
      if (field) {
        field.textContent = error.message;
        field.hidden = false;
        const input = form.querySelector('[name="' + error.field + '"]');
        if (input) { input.setAttribute("aria-invalid", "true"); input.focus(); }
      } else {
        failed.textContent = error.message;
        failed.hidden = false;
      }
    }
    function arrange() {
      const v = values();
      form.querySelector('[data-price-field="limit"]').hidden = v.type !== "limit";
      form.querySelector('[data-price-field="stop"]').hidden = v.type !== "stop";
      submit.textContent = (v.side === "buy" ? "Buy " : "Sell ") + symbol;
      submit.classList.toggle("sell", v.side === "sell");
      estimate();
    }
    form.addEventListener("input", () => { clientOrderId = null; arrange(); });
    form.addEventListener("change", () => { clientOrderId = null; arrange(); });
    arrange();

    async function refreshAccount() {
      const [account, positions] = await Promise.all([api("GET", "/api/trading/account"), api("GET", "/api/trading/positions")]);
      root.querySelector("[data-trading-buying-power]").textContent = money(account.buying_power);
      const held = (positions.results || []).find((p) => p.symbol === symbol);
      root.querySelector("[data-trading-position]").textContent = held ? quantity(held.qty) + " " + symbol + " · " + money(held.market_value) : "None";
      const pl = root.querySelector("[data-trading-pl]");
      if (pl && held) { pl.textContent = money(held.unrealized_pl) + " (" + signed(held.unrealized_pl_pct, 2) + "%)"; setDirection(pl, held.unrealized_pl); }
    }

    function describe(order) {
      const what = (order.side === "buy" ? "Bought " : "Sold ") + quantity(order.qty) + " " + order.symbol;
      if (order.status === "filled") return what + " at " + price(order.filled_price) + " (" + money(order.filled_value) + ").";
      if (order.status === "open") return "Order placed: " + order.side + " " + quantity(order.qty) + " " + order.symbol + (order.type === "market" ? ". It fills when the market opens." : ". It fills when the price is reached.");
      return "Order " + order.status + (order.reason ? ": " + order.reason.replace(/_/g, " ") : "") + ".";
    }

    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      if (busy) return;  // a second click while the first is on its way
      clearErrors();
      done.hidden = true;
      const v = values();
      if (!v.qty) { showError({ field: "qty", message: "Enter a quantity, such as 1 or 0.5." }); return; }
      const body = { symbol, side: v.side, qty: v.qty, type: v.type, time_in_force: v.time_in_force };
      if (v.type === "limit") body.limit_price = v.limit_price || null;
      if (v.type === "stop") body.stop_price = v.stop_price || null;
      if (!clientOrderId) clientOrderId = newId();
      body.client_order_id = clientOrderId;
      busy = true;
      submit.disabled = true;
      try {
        const order = await api("POST", "/api/trading/orders", body);
        clientOrderId = null;  // placed: the next order is a new one
        form.querySelector('[name="qty"]').value = "";
        done.textContent = describe(order);
        done.hidden = false;
        estimate();
        await refreshAccount().catch(() => {});
      } catch (failure) {
        // A refused order leaves nothing behind; a dropped connection keeps the id for the retry.
        if (failure.status !== 0) clientOrderId = null;
        showError(failure.error);
      } finally {
        busy = false;
        submit.disabled = false;
      }
    });

    // An order that fills later (a limit reached, a market opening) arrives here, in every tab.
    if (realtime) {
      realtime.on("trading.order", (message) => {
        const order = message.order;
        if (!order) return;
        if (order.symbol === symbol) { done.textContent = describe(order); done.hidden = false; }
        refreshAccount().catch(() => {});
      });
    }
  }

  // The chart: an area series over the API's bars, one range at a time; live ticks extend 1D.
  function drawChart(root, symbol) {
    const box = root.querySelector("[data-trading-chart]");
    const status = root.querySelector("[data-trading-chart-status]");
    const say = (text) => { status.textContent = text; };
    const library = window.LightweightCharts;
    if (!library) {
      say("The chart could not load.");
      return { tick() {}, say };
    }
    // The chart shows times in the reader's zone: Lightweight Charts draws unix seconds as UTC.
    const shift = -new Date().getTimezoneOffset() * 60;
    const chart = library.createChart(box, {
      autoSize: true,
      layout: { background: { color: "transparent" }, textColor: "#5f6670", fontFamily: "system-ui, sans-serif" },
      grid: { vertLines: { visible: false }, horzLines: { color: "#eef0f3" } },
      rightPriceScale: { borderVisible: false },
      timeScale: { borderVisible: false, timeVisible: true, secondsVisible: false },
      handleScroll: false,
      handleScale: false,
    });
    const series = chart.addAreaSeries({ lineWidth: 2, priceLineVisible: false });
    let range = "1D";
    let last = 0;  // the time of the chart's last point
    let step = 300;  // seconds between two bars of the range on show
    let asked = 0;

    function colour(up) {
      const line = up ? "#1b7f3b" : "#c62828";
      series.applyOptions({ lineColor: line, topColor: up ? "rgba(27,127,59,.25)" : "rgba(198,40,40,.25)", bottomColor: "rgba(255,255,255,0)" });
    }

    async function load(next) {
      const mine = ++asked;
      say("Loading " + next + "…");
      let answer;
      try {
        answer = await api("GET", "/api/trading/bars/" + encodeURIComponent(symbol) + "?range=" + next);
      } catch (failure) {
        if (mine === asked) say(failure.error.message);
        return;
      }
      if (mine !== asked) return;  // a later click won
      range = next;
      const points = answer.bars.map((bar) => ({ time: Math.floor(Date.parse(bar.t) / 1000) + shift, value: bar.c }));
      series.setData(points);
      last = points.length ? points[points.length - 1].time : 0;
      step = points.length > 1 ? points[points.length - 1].time - points[points.length - 2].time : 300;
      colour(!points.length || points[points.length - 1].value >= points[0].value);
      chart.timeScale().fitContent();
      box.dataset.range = next;
      box.dataset.points = String(points.length);
      root.querySelectorAll("button[data-range]").forEach((button) => button.setAttribute("aria-pressed", String(button.dataset.range === next)));
      say(points.length ? "" : "No prices in this range yet.");
    }

    root.querySelectorAll("button[data-range]").forEach((button) => button.addEventListener("click", () => load(button.dataset.range)));
    load("1D");

    return {
      say,
      // A live quote moves the day's last bar, and starts the next one when its time comes, so the
      // line keeps the bars' spacing. Other ranges keep their bars; a closed market adds nothing.
      tick(quote) {
        if (range !== "1D" || !quote.market_open || !last) return;
        const time = Math.floor(Date.parse(quote.as_of) / 1000) + shift;
        if (time < last) return;
        const bar = last + Math.floor((time - last) / step) * step;
        if (bar > last) box.dataset.points = String(Number(box.dataset.points || 0) + 1);
        last = bar;
        series.update({ time: bar, value: quote.price });
        box.dataset.updated = quote.as_of;
      },
    };
  }

  // The markets home -----------------------------------------------------------------------------------

  function marketsPage(root) {
    // Live: the watchlist and the movers (the full list by class would be a hundred quotes a second);
    // a symbol's every row on the page follows its ticks. At most the server's limit of 100.
    const rows = Array.from(root.querySelectorAll("[data-live] [data-quote-row]"));
    const symbols = Array.from(new Set(rows.map((row) => row.dataset.symbol)));
    follow(symbols.slice(0, 100), (quotes) => {
      quotes.forEach((q) => {
        root.querySelectorAll('[data-quote-row][data-symbol="' + q.symbol + '"]').forEach((row) => {
          const priceBox = row.querySelector('[data-field="price"]');
          const text = price(q.price);
          if (priceBox.textContent !== text) {
            const before = Number(priceBox.dataset.value || q.price);
            priceBox.textContent = text;
            flash(priceBox, q.price >= before);
          }
          priceBox.dataset.value = String(q.price);
          const change = row.querySelector('[data-field="change_pct"]');
          change.textContent = signed(q.change_pct, 2) + "%";
          setDirection(change, q.change_pct);
        });
      });
    }, (reply) => showTier(reply.delayed, reply.delay_minutes));

    // The search box answers as one types; the form still works without JavaScript.
    const form = root.querySelector("[data-trading-search]");
    const input = form.querySelector('input[name="q"]');
    const list = root.querySelector("[data-trading-results]");
    let timer = null;
    let asked = 0;
    async function search() {
      const q = input.value.trim();
      const mine = ++asked;
      if (!q) { list.replaceChildren(); return; }
      let answer;
      try { answer = await api("GET", "/api/trading/symbols?limit=10&q=" + encodeURIComponent(q)); } catch (failure) { return; }
      if (mine !== asked) return;
      const items = answer.results.map((r) => {
        const item = document.createElement("li");
        const link = document.createElement("a");
        link.href = "/trading/" + encodeURIComponent(r.symbol);
        const strong = document.createElement("strong");
        strong.textContent = r.symbol;
        const name = document.createElement("span");
        name.className = "muted";
        name.textContent = " " + r.name + " · " + r.exchange;
        link.append(strong, name);
        item.appendChild(link);
        return item;
      });
      if (!items.length) {
        const none = document.createElement("li");
        none.className = "muted";
        none.textContent = "No symbol matches “" + q + "”.";
        items.push(none);
      }
      list.replaceChildren(...items);
    }
    input.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(search, 200); });
  }

  // The portfolio ----------------------------------------------------------------------------------------

  function portfolioPage(root) {
    const failed = root.querySelector("[data-trading-cancel-error]");
    root.addEventListener("click", async (event) => {
      const button = event.target.closest("[data-cancel-order]");
      if (!button) return;
      button.disabled = true;
      failed.hidden = true;
      try {
        await api("DELETE", "/api/trading/orders/" + button.dataset.cancelOrder);
        const row = button.closest("[data-order]");
        row.querySelector("[data-order-status]").textContent = "Cancelled";
        button.remove();
      } catch (failure) {
        failed.textContent = failure.error.message;
        failed.hidden = false;
        button.disabled = false;
      }
    });
    // An order that fills changes cash, positions and lists: draw them again.
    if (realtime) realtime.on("trading.order", () => location.reload());
  }

  function start() {
    document.querySelectorAll("[data-trading-symbol-page]").forEach(symbolPage);
    document.querySelectorAll("[data-trading-markets]").forEach(marketsPage);
    document.querySelectorAll("[data-trading-portfolio]").forEach(portfolioPage);
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
