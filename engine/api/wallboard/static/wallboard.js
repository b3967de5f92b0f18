// The desk wallboard: signs in with a tickets:read token (kept in this tab's
// sessionStorage, sent only in the Authorization header), then follows
// /wallboard/events, a stream of server-sent events read with fetch() so that the header
// can be sent. Reconnects when the stream drops or falls silent. Text from tickets is
// only ever set as text (textContent), never as HTML.
"use strict";

(function () {
  const TOKEN_KEY = "wallboard.token";
  const LANGUAGE_KEY = "wallboard.language";
  const SILENT_MS = 45000; // heartbeats come every 15 s: silence this long is a dead stream
  const RETRY_MS = [1000, 2000, 5000, 10000, 15000];
  const PRIORITIES = ["P1", "P2", "P3", "P4"];
  const SHAPES = { P1: "▲", P2: "◆", P3: "●", P4: "○" };
  const CHANNELS = ["email", "phone", "chat", "snmp"];
  const CHANNEL_SIGNS = { email: "✉", phone: "☎", chat: "✎", snmp: "⚙" };

  const TEXTS = {
    en: {
      title: "Service desk",
      signInTitle: "Sign in to the wallboard",
      tokenLabel: "Token with the tickets:read scope",
      signIn: "Sign in",
      signOut: "Sign out",
      refused: "This token was refused: it must be valid and have the tickets:read scope.",
      unreachable: "The server did not answer; try again.",
      catchingUp: "Reading the tickets from Kafka…",
      live: "● live",
      reconnecting: "○ reconnecting…",
      open: "open",
      waiting: "nobody has",
      oldest: "oldest",
      none: "none",
      p1Title: "P1 open",
      ticket: "Ticket",
      subject: "Subject",
      age: "Age",
      assignee: "Assignee",
      tier: "Tier",
      sla: "SLA",
      nobody: "✗ nobody",
      noP1: "✓ No P1 open",
      slaTitle: "Customer updates",
      breached: "⚠ overdue",
      warning: "◔ due soon",
      ok: "✓ on time",
      due: "due",
      noSla: "✓ All updates on time",
      inflowTitle: "New tickets, last hour",
      channels: { email: "e-mail", phone: "phone", chat: "chat", snmp: "SNMP" },
      stormsTitle: "Trap storms",
      noStorms: "✓ No storm",
      notifications: "notifications",
      flapping: "flapping",
      pipelineTitle: "Pipeline",
      lag: "consumer lag (records)",
      lagUnknown: "not read yet",
      deadLetters: "dead letters, last hour",
      ago: (span) => span + " ago",
      inTime: (span) => "in " + span,
      language: "ES",
      languageName: "Español",
    },
    es: {
      title: "Mesa de servicio",
      signInTitle: "Entrar al tablero",
      tokenLabel: "Token con el permiso tickets:read",
      signIn: "Entrar",
      signOut: "Salir",
      refused: "Token rechazado: debe ser válido y tener el permiso tickets:read.",
      unreachable: "El servidor no respondió; inténtelo de nuevo.",
      catchingUp: "Leyendo los tickets de Kafka…",
      live: "● en vivo",
      reconnecting: "○ reconectando…",
      open: "abiertos",
      waiting: "sin asignar",
      oldest: "el más antiguo",
      none: "ninguno",
      p1Title: "P1 abiertos",
      ticket: "Ticket",
      subject: "Asunto",
      age: "Edad",
      assignee: "Asignado a",
      tier: "Nivel",
      sla: "SLA",
      nobody: "✗ nadie",
      noP1: "✓ Ningún P1 abierto",
      slaTitle: "Avisos al cliente",
      breached: "⚠ vencido",
      warning: "◔ por vencer",
      ok: "✓ a tiempo",
      due: "vence",
      noSla: "✓ Todos los avisos a tiempo",
      inflowTitle: "Nuevos, última hora",
      channels: { email: "correo", phone: "teléfono", chat: "chat", snmp: "SNMP" },
      stormsTitle: "Tormentas de traps",
      noStorms: "✓ Ninguna tormenta",
      notifications: "notificaciones",
      flapping: "intermitente",
      pipelineTitle: "Procesamiento",
      lag: "retraso de consumo (registros)",
      lagUnknown: "aún sin leer",
      deadLetters: "entradas no procesadas, última hora",
      ago: (span) => "hace " + span,
      inTime: (span) => "en " + span,
      language: "EN",
      languageName: "English",
    },
  };

  const $ = (id) => document.getElementById(id);
  let language = chooseLanguage();
  let board = null; // the last snapshot
  let serverOffsetMs = 0; // the server's clock less this browser's
  let stream = null; // the AbortController of the open stream
  let lastHeardAt = 0;
  let attempt = 0;
  let retryTimer = null;

  function chooseLanguage() {
    const kept = localStorage.getItem(LANGUAGE_KEY);
    if (kept === "es" || kept === "en") return kept;
    const preferred = (navigator.languages && navigator.languages[0]) || navigator.language || "en";
    return preferred.toLowerCase().startsWith("es") ? "es" : "en";
  }

  function t(key) {
    return TEXTS[language][key];
  }

  function element(tag, className, text) {
    const made = document.createElement(tag);
    if (className) made.className = className;
    if (text !== undefined && text !== null) made.textContent = String(text);
    return made;
  }

  // --- time ----------------------------------------------------------------------------

  function serverNow() {
    return Date.now() + serverOffsetMs;
  }

  function span(ms) {
    const minutes = Math.floor(Math.abs(ms) / 60000);
    if (minutes < 1) return Math.floor(Math.abs(ms) / 1000) + " s";
    if (minutes < 60) return minutes + " min";
    const hours = Math.floor(minutes / 60);
    if (hours < 48) return hours + " h " + String(minutes % 60).padStart(2, "0") + " min";
    return Math.floor(hours / 24) + " d " + (hours % 24) + " h";
  }

  function clockTime(ms) {
    return new Date(ms).toLocaleTimeString(language, { hour: "2-digit", minute: "2-digit" });
  }

  // Ages and deadlines move with the clock, between snapshots too.
  function tick() {
    $("clock").textContent = new Date(serverNow()).toLocaleTimeString(language, {
      hour: "2-digit", minute: "2-digit", second: "2-digit",
    });
    const now = serverNow();
    for (const cell of document.querySelectorAll("[data-since]")) {
      cell.textContent = span(now - Number(cell.dataset.since));
    }
    for (const cell of document.querySelectorAll("[data-deadline]")) {
      const left = Number(cell.dataset.deadline) - now;
      cell.textContent = left >= 0 ? t("inTime")(span(left)) : t("ago")(span(left));
    }
  }

  function age(since) {
    const cell = element("span", "age");
    cell.dataset.since = String(Date.parse(since));
    return cell;
  }

  // --- rendering -----------------------------------------------------------------------

  function translateStatic() {
    document.documentElement.lang = language;
    document.title = t("title");
    for (const node of document.querySelectorAll("[data-i18n]")) {
      node.textContent = t(node.dataset.i18n);
    }
    const switcher = $("language");
    switcher.textContent = t("language");
    switcher.title = t("languageName");
    switcher.setAttribute("aria-label", t("languageName"));
  }

  function priorityMark(priority) {
    return element("span", priority, SHAPES[priority] + " " + priority);
  }

  function slaMark(state) {
    return element("span", "sla-state " + state, t(state));
  }

  function renderTiers(tiers) {
    const box = $("tiers");
    box.replaceChildren();
    for (const tier of tiers) {
      const card = element("article", "tier");
      card.id = "tier-" + tier.tier;
      const head = element("div", "tier-head");
      head.append(element("span", "tier-name", tier.tier));
      head.append(element("span", "tier-total", tier.total));
      head.append(element("span", "tier-total-label", t("open")));
      card.append(head);
      const chips = element("div", "by-priority");
      for (const priority of PRIORITIES) {
        const count = tier.open[priority] || 0;
        const chip = element("div", "chip " + priority + (count ? "" : " zero"));
        chip.append(element("span", "figure", count));
        chip.append(document.createTextNode(SHAPES[priority] + " " + priority));
        chips.append(chip);
      }
      card.append(chips);
      const waiting = element("div", "waiting");
      waiting.append(document.createTextNode(t("waiting") + ": "));
      waiting.append(element("strong", null, tier.waiting));
      card.append(waiting);
      const oldestLine = element("div", "waiting");
      if (tier.oldest_waiting) {
        const oldest = tier.oldest_waiting;
        const strong = element("strong");
        strong.append(age(oldest.opened_at));
        oldestLine.append(document.createTextNode(t("oldest") + ": "), strong);
        oldestLine.append(document.createTextNode(" "), priorityMark(oldest.priority));
        oldestLine.append(document.createTextNode(" "), element("span", "id", oldest.ticket_id));
      } else {
        oldestLine.append(document.createTextNode(t("oldest") + ": " + t("none")));
      }
      card.append(oldestLine);
      box.append(card);
    }
  }

  function renderP1(rows, count) {
    $("p1-count").textContent = count;
    const body = $("p1-rows");
    body.replaceChildren();
    for (const row of rows) {
      const line = element("tr", "p1-row");
      line.dataset.ticket = row.ticket_id;
      const what = element("div", "what-cell");
      what.append(element("div", "subject", row.subject), element("div", "id", row.ticket_id));
      const cells = [
        what,
        age(row.opened_at),
        row.assignee ? element("span", null, row.assignee) : element("span", "nobody", t("nobody")),
        element("span", null, row.tier),
        slaMark(row.sla),
      ];
      cells.forEach((content, index) => {
        const cell = element("td", index === 0 ? "subject-cell" : null);
        cell.append(content);
        line.append(cell);
      });
      body.append(line);
    }
    $("p1-table").hidden = rows.length === 0;
    $("p1-empty").hidden = rows.length !== 0;
  }

  function renderSla(rows, counts) {
    $("sla-count").textContent = (counts.breached || 0) + (counts.warning || 0);
    const list = $("sla-list");
    list.replaceChildren();
    for (const row of rows) {
      const item = element("li");
      item.dataset.ticket = row.ticket_id;
      const line = element("div", "line");
      line.append(slaMark(row.state), priorityMark(row.priority));
      line.append(element("span", "id", row.ticket_id));
      const detail = element("div", "line detail");
      detail.append(element("span", "what", row.subject));
      if (row.deadline) {
        const due = element("span", "age");
        due.dataset.deadline = String(Date.parse(row.deadline));
        line.append(due);
        detail.append(element("span", null, t("due") + " " + clockTime(Date.parse(row.deadline))));
      }
      item.append(line, detail);
      list.append(item);
    }
    $("sla-empty").hidden = rows.length !== 0;
  }

  function renderInflow(inflow) {
    const box = $("inflow");
    box.replaceChildren();
    for (const channel of CHANNELS) {
      const cell = element("div");
      cell.id = "inflow-" + channel;
      cell.append(element("span", "figure", inflow[channel] || 0));
      cell.append(element("div", "label", CHANNEL_SIGNS[channel] + " " + t("channels")[channel]));
      box.append(cell);
    }
  }

  function renderStorms(storms) {
    const list = $("storms");
    list.replaceChildren();
    for (const storm of storms) {
      const item = element("li");
      const line = element("div", "line");
      line.append(element("span", "sla-state breached", "⚡ ×" + storm.occurrences));
      line.append(element("span", "what", storm.alarm));
      if (storm.flapping) line.append(element("span", "sla-state warning", "⇅ " + t("flapping")));
      line.append(priorityMark(storm.priority), element("span", null, storm.tier));
      item.append(line);
      list.append(item);
    }
    $("storms-empty").hidden = storms.length !== 0;
  }

  function renderPipeline(pipeline) {
    const box = $("pipeline");
    box.replaceChildren();
    const total = pipeline.total_lag;
    const figure = element("span", "figure" + (total ? " lagging" : ""),
      total === null ? "–" : total);
    figure.id = "total-lag";
    box.append(figure);
    box.append(element("div", "label", total === null ? t("lag") + ": " + t("lagUnknown") : t("lag")));
    const groups = element("div", "groups");
    for (const row of pipeline.consumer_lag.filter((r) => r.records > 0).slice(0, 4)) {
      groups.append(element("div", null, row.group + " · " + row.topic + ": " + row.records));
    }
    box.append(groups);
    const letters = pipeline.dead_letters_last_hour || {};
    const lost = Object.values(letters).reduce((sum, n) => sum + n, 0);
    const dead = element("div", "label" + (lost ? " lagging" : ""),
      (lost ? "⚠ " : "✓ ") + t("deadLetters") + ": " + lost);
    dead.id = "dead-letters";
    box.append(dead);
    for (const [component, n] of Object.entries(letters).slice(0, 3)) {
      groups.append(element("div", null, component + ": " + n));
    }
  }

  function render() {
    if (!board) return;
    $("catching-up").hidden = board.ready;
    renderTiers(board.tiers);
    renderP1(board.p1, board.p1_count);
    renderSla(board.sla, board.sla_counts);
    renderInflow(board.inflow_last_hour);
    renderStorms(board.storms);
    renderPipeline(board.pipeline);
    tick();
  }

  function show(snapshot) {
    board = snapshot;
    serverOffsetMs = Date.parse(snapshot.generated_at) - Date.now();
    render();
  }

  function setConnection(live) {
    const status = $("connection");
    status.textContent = live ? t("live") : t("reconnecting");
    status.className = "connection " + (live ? "live" : "down");
  }

  // --- signing in and out --------------------------------------------------------------

  function token() {
    return sessionStorage.getItem(TOKEN_KEY);
  }

  function headers(given) {
    return { Authorization: "Bearer " + given, Accept: "application/json" };
  }

  function showBoard(signedIn) {
    $("sign-in").hidden = signedIn;
    $("board").hidden = !signedIn;
    $("sign-out").hidden = !signedIn;
    if (!signedIn) $("connection").textContent = "";
  }

  async function signIn(event) {
    event.preventDefault();
    const field = $("token");
    const given = field.value.trim();
    field.value = ""; // not kept in the page once read
    $("sign-in-error").textContent = "";
    if (!given) return;
    let answer;
    try {
      answer = await fetch("/wallboard/state", { headers: headers(given), cache: "no-store" });
    } catch (error) {
      $("sign-in-error").textContent = t("unreachable");
      return;
    }
    if (!answer.ok) {
      $("sign-in-error").textContent = answer.status === 401 || answer.status === 403
        ? t("refused") : t("unreachable");
      return;
    }
    sessionStorage.setItem(TOKEN_KEY, given);
    show(await answer.json());
    showBoard(true);
    follow();
  }

  function signOut(reason) {
    sessionStorage.removeItem(TOKEN_KEY);
    stopFollowing();
    board = null;
    showBoard(false);
    $("sign-in-error").textContent = reason || "";
    $("token").focus();
  }

  // --- the live stream -----------------------------------------------------------------

  function stopFollowing() {
    if (retryTimer !== null) clearTimeout(retryTimer);
    retryTimer = null;
    if (stream) stream.abort();
    stream = null;
  }

  function retryLater() {
    setConnection(false);
    if (!token() || retryTimer !== null) return;
    const wait = RETRY_MS[Math.min(attempt, RETRY_MS.length - 1)];
    attempt += 1;
    retryTimer = setTimeout(() => {
      retryTimer = null;
      follow();
    }, wait);
  }

  function dispatch(name, data) {
    lastHeardAt = Date.now();
    if (name === "snapshot") {
      attempt = 0;
      setConnection(true);
      show(JSON.parse(data));
    } else if (name === "heartbeat") {
      setConnection(true);
    }
  }

  // One event per blank-line-separated block: "event: name" and "data: ..." lines.
  function parseBlock(block) {
    let name = "message";
    const data = [];
    for (const line of block.split("\n")) {
      if (line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? "" : line.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (field === "event") name = value;
      else if (field === "data") data.push(value);
    }
    if (data.length) dispatch(name, data.join("\n"));
    else lastHeardAt = Date.now();
  }

  async function follow() {
    const given = token();
    if (!given) return;
    stopFollowing();
    const controller = new AbortController();
    stream = controller;
    lastHeardAt = Date.now();
    try {
      const answer = await fetch("/wallboard/events", {
        headers: { Authorization: "Bearer " + given, Accept: "text/event-stream" },
        cache: "no-store",
        signal: controller.signal,
      });
      if (answer.status === 401 || answer.status === 403) {
        signOut(t("refused"));
        return;
      }
      if (!answer.ok || !answer.body) throw new Error("status " + answer.status);
      const reader = answer.body.getReader();
      const decoder = new TextDecoder();
      let buffered = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffered += decoder.decode(value, { stream: true }).replace(/\r\n?/g, "\n");
        let end;
        while ((end = buffered.indexOf("\n\n")) >= 0) {
          parseBlock(buffered.slice(0, end));
          buffered = buffered.slice(end + 2);
        }
      }
    } catch (error) {
      // dropped, refused or aborted: retried below unless signed out meanwhile
    }
    if (stream === controller) {
      stream = null;
      retryLater();
    }
  }

  // A stream that says nothing, not even its heartbeat, is dead: start another.
  function watch() {
    if (stream && Date.now() - lastHeardAt > SILENT_MS) {
      stream.abort();
    }
  }

  function switchLanguage() {
    language = language === "es" ? "en" : "es";
    localStorage.setItem(LANGUAGE_KEY, language);
    translateStatic();
    render();
    if (token()) setConnection(stream !== null && retryTimer === null);
  }

  function start() {
    translateStatic();
    $("sign-in-form").addEventListener("submit", signIn);
    $("sign-out").addEventListener("click", () => signOut(""));
    $("language").addEventListener("click", switchLanguage);
    setInterval(tick, 1000);
    setInterval(watch, 5000);
    if (token()) {
      showBoard(true);
      follow();
    } else {
      showBoard(false);
      $("token").focus();
    }
  }

  start();
})();
