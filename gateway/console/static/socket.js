// The console's one WebSocket: requests matched by requestId, subscriptions that resume after a
// reconnect (from the last timestamp, dropping what was seen), token renewal before expiry over
// the socket, and reconnection with capped, full-jitter exponential backoff.

const BACKOFF_BASE_MS = 250;
const BACKOFF_CAP_MS = 15000;
const REQUEST_TIMEOUT_MS = 30000;
const SEEN_LIMIT = 5000;
const REVOKED = 4003;

// Requests that change nothing: sent again after a reconnect. Any other one whose reply was lost
// is reported as "may or may not have been applied", never silently sent twice.
const SAFE = new Set(["server/info", "authenticate", "token/refresh", "device/get", "device/list"]);

export class RequestError extends Error {
  constructor(action, code, message) {
    super(message);
    this.action = action;
    this.code = code;
  }
}

function claims(token) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(part + "=".repeat((4 - (part.length % 4)) % 4)));
  } catch {
    return {};
  }
}

// When to renew a token (ms since the epoch): a quarter of its life before expiry, at most 60 s.
export function renewAt(token) {
  const { exp, iat } = claims(token);
  if (typeof exp !== "number") return null;
  const life = typeof iat === "number" ? exp - iat : 60;
  return (exp - Math.min(60, Math.max(life, 0) / 4)) * 1000;
}

function isRevocation(error) {
  return /revoked|reuse/i.test(error.message || "");
}

// The gateway could not answer now (its database is down, it is busy): try again later.
function transient(error) {
  return error.code === 429 || error.code >= 500;
}

function itemKey(kind, item) {
  if (kind === "notification") return String(item.id);
  return [item.id, item.lastUpdated, item.status, JSON.stringify(item.result)].join("|");
}

export class GatewaySocket {
  // tokens: {access, refresh} (kept in memory only); hooks: onStatus(text, state),
  // onAuthLost(message) when the session cannot go on (revoked, refresh refused).
  constructor(tokens, hooks) {
    this.tokens = tokens;
    this.hooks = hooks;
    this.pending = new Map();
    this.nextId = 1;
    this.subscriptions = new Set();
    this.byId = new Map();
    this.ws = null;
    this.ready = false;
    this.stopped = false;
    this.attempt = 0;
    this.waiters = [];
    this.refreshTimer = null;
    this.retryTimer = null;
  }

  start() {
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.refreshTimer);
    clearTimeout(this.retryTimer);
    for (const waiter of this.waiters) waiter.reject(new Error("Logged out"));
    this.waiters = [];
    if (this.ws) this.ws.close(1000);
  }

  connect() {
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    const ws = new WebSocket(scheme + location.host + "/v1/ws");
    this.ws = ws;
    this.hooks.onStatus("connecting…", "connecting");
    ws.onopen = () => {
      this.setUp(ws).catch((error) => this.setUpFailed(ws, error));
    };
    ws.onmessage = (event) => this.onFrame(event.data);
    ws.onclose = (event) => this.onClose(ws, event);
  }

  // -- requests --------------------------------------------------------------------------

  call(ws, action, fields = {}, onSuccess = null) {
    return new Promise((resolve, reject) => {
      if (ws.readyState !== WebSocket.OPEN) {
        reject(Object.assign(new Error("not connected"), { dropped: true, sent: false }));
        return;
      }
      const requestId = this.nextId++;
      const timer = setTimeout(() => {
        this.pending.delete(requestId);
        reject(Object.assign(new Error("no reply in time"), { dropped: true, sent: true }));
      }, REQUEST_TIMEOUT_MS);
      this.pending.set(requestId, { action, resolve, reject, timer, onSuccess });
      ws.send(JSON.stringify({ action, requestId, ...fields }));
    });
  }

  async whenReady() {
    if (this.ready) return this.ws;
    if (this.stopped) throw new Error("Logged out");
    await new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
    return this.ws;
  }

  // Send once connected; a request that changes state and lost its reply is not resent.
  async request(action, fields = {}) {
    for (;;) {
      const ws = await this.whenReady();
      try {
        return await this.call(ws, action, fields);
      } catch (error) {
        if (!error.dropped) throw error;
        if (error.sent && !SAFE.has(action)) {
          throw new Error(
            "The connection was lost before the gateway answered: " +
              "the request may or may not have been applied.",
          );
        }
      }
    }
  }

  onFrame(data) {
    let body;
    try {
      body = JSON.parse(data);
    } catch {
      return;
    }
    if (body === null || typeof body !== "object") return;
    if ("status" in body) {
      const pending = this.pending.get(body.requestId);
      if (!pending) return;
      this.pending.delete(body.requestId);
      clearTimeout(pending.timer);
      if (body.status === "success") {
        if (pending.onSuccess) pending.onSuccess(body);
        pending.resolve(body);
      } else {
        pending.reject(new RequestError(pending.action, body.code, body.error));
      }
      return;
    }
    const subscription = this.byId.get(body.subscriptionId);
    const item = body.notification || body.command;
    if (subscription && item && typeof item === "object") subscription.deliver(body.action, item);
  }

  // -- connection life -------------------------------------------------------------------

  async setUp(ws) {
    const due = this.tokens.access ? renewAt(this.tokens.access) : 0;
    if (due !== null && due <= Date.now()) await this.renew(ws);
    try {
      await this.call(ws, "authenticate", { token: this.tokens.access });
    } catch (error) {
      if (error.code !== 401 || isRevocation(error)) throw error;
      await this.renew(ws);
      await this.call(ws, "authenticate", { token: this.tokens.access });
    }
    for (const subscription of [...this.subscriptions]) {
      try {
        await this.bind(ws, subscription);
      } catch (error) {
        if (error.dropped || transient(error)) throw error; // reconnect, after a backoff
        this.subscriptions.delete(subscription);
        subscription.onError(error);
      }
    }
    if (ws !== this.ws) return;
    this.ready = true;
    this.attempt = 0;
    this.hooks.onStatus("live", "connected");
    for (const waiter of this.waiters) waiter.resolve();
    this.waiters = [];
    this.scheduleRefresh(ws);
  }

  setUpFailed(ws, error) {
    if (error.code === 401) {
      this.authLost(error.message || "Your session has ended.");
    } else if (ws.readyState === WebSocket.OPEN) {
      ws.close(1000);
    }
  }

  async renew(ws) {
    const reply = await this.call(ws, "token/refresh", { refreshToken: this.tokens.refresh });
    this.tokens.access = reply.accessToken;
  }

  scheduleRefresh(ws) {
    clearTimeout(this.refreshTimer);
    const due = renewAt(this.tokens.access);
    if (due === null) return;
    this.refreshTimer = setTimeout(
      () => {
        this.renew(ws).then(
          () => this.scheduleRefresh(ws),
          (error) => {
            if (error.code === 401) this.authLost(error.message);
            else if (ws.readyState === WebSocket.OPEN) ws.close(1000);
          },
        );
      },
      Math.max(0, due - Date.now()),
    );
  }

  onClose(ws, event) {
    if (ws !== this.ws) return;
    this.ready = false;
    clearTimeout(this.refreshTimer);
    for (const [requestId, pending] of this.pending) {
      clearTimeout(pending.timer);
      pending.reject(Object.assign(new Error("connection lost"), { dropped: true, sent: true }));
      this.pending.delete(requestId);
    }
    this.byId.clear();
    if (this.stopped) return;
    if (event.code === REVOKED) {
      this.authLost("Your session was revoked (logged out elsewhere or by an administrator).");
      return;
    }
    const delay = Math.random() * Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** this.attempt);
    this.attempt += 1;
    this.hooks.onStatus(`reconnecting in ${(delay / 1000).toFixed(1)} s…`, "reconnecting");
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }

  authLost(message) {
    if (this.stopped) return;
    this.stop();
    this.hooks.onAuthLost(message);
  }

  // -- subscriptions ---------------------------------------------------------------------

  // kind: "notification" | "command"; fields: the subscribe filters; since: where to start.
  // With keepSince the resume point stays at `since` (the whole window is replayed in its
  // current state: how a command's later status is caught up after a reconnect).
  subscribe(kind, fields, since, onItem, { keepSince = false, onError = () => {} } = {}) {
    const seen = new Set();
    const subscription = {
      kind,
      fields,
      since,
      deliver: (action, item) => {
        const key = itemKey(kind, item);
        if (seen.has(key)) return;
        if (seen.size >= SEEN_LIMIT) seen.clear();
        seen.add(key);
        if (!keepSince && action.endsWith("/insert") && typeof item.timestamp === "string") {
          subscription.since = item.timestamp;
        }
        onItem(action, item);
      },
      onError,
      close: () => this.unsubscribe(subscription),
    };
    this.subscriptions.add(subscription);
    if (this.ready) {
      const ws = this.ws;
      this.bind(ws, subscription).catch((error) => {
        if (error.dropped) return; // bound again by the reconnect
        if (transient(error)) {
          ws.close(1000); // the reconnect binds it again, after a backoff
          return;
        }
        this.subscriptions.delete(subscription);
        onError(error);
      });
    }
    return subscription;
  }

  bind(ws, subscription) {
    const fields = { ...subscription.fields, timestamp: subscription.since };
    if (subscription.kind === "command") fields.returnUpdatedCommands = true;
    return this.call(ws, `${subscription.kind}/subscribe`, fields, (body) => {
      if (this.subscriptions.has(subscription)) {
        subscription.id = body.subscriptionId;
        this.byId.set(body.subscriptionId, subscription);
      }
    });
  }

  unsubscribe(subscription) {
    this.subscriptions.delete(subscription);
    if (subscription.id !== undefined && this.byId.get(subscription.id) === subscription) {
      this.byId.delete(subscription.id);
      if (this.ready) {
        this.call(this.ws, `${subscription.kind}/unsubscribe`, {
          subscriptionId: subscription.id,
        }).catch(() => {});
      }
    }
  }
}
