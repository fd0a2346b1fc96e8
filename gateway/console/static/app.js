// The console's pages: log in, the devices, a device's live view. Everything shown is set with
// textContent (never innerHTML): device names and payloads are data, not markup.

import { GatewaySocket, RequestError } from "./socket.js";

const REPLAY_MINUTES = 10;
const FEED_LIMIT = 200;

const state = {
  tokens: null,
  socket: null,
  networks: new Map(),
  live: [],
  commands: new Map(),
  view: 0, // bumped on every page change: a page still loading knows it was left
};

const $ = (id) => document.getElementById(id);

function element(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

function json(value) {
  return value === undefined ? "null" : JSON.stringify(value);
}

function show(view) {
  for (const id of ["login-view", "devices-view", "device-view"]) $(id).hidden = id !== view;
  $("logout").hidden = view === "login-view";
}

function setStatus(text, kind) {
  const status = $("status");
  status.textContent = text;
  status.className = `status ${kind || ""}`;
}

// -- REST ----------------------------------------------------------------------------------

async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (state.tokens) headers.Authorization = `Bearer ${state.tokens.access}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "omit",
  });
  const text = await response.text();
  let parsed = null;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    parsed = null;
  }
  if (!response.ok) {
    const message = (parsed && parsed.message) || `${response.status} ${response.statusText}`;
    throw new RequestError(`${method} ${path}`, response.status, message);
  }
  return parsed;
}

// -- session -------------------------------------------------------------------------------

async function logIn(event) {
  event.preventDefault();
  const form = event.target;
  const message = $("login-message");
  message.textContent = "";
  try {
    const body = await api("POST", "/v1/auth/login", {
      email: form.elements.email.value,
      password: form.elements.password.value,
    });
    state.tokens = { access: body.access_token, refresh: body.refresh_token };
  } catch (error) {
    message.textContent = error.message;
    return;
  }
  form.elements.password.value = "";
  state.socket = new GatewaySocket(state.tokens, { onStatus: setStatus, onAuthLost: endSession });
  state.socket.start();
  if (!location.hash.startsWith("#/devices")) location.hash = "#/devices";
  else route();
}

function endSession(message) {
  state.view += 1;
  closeLive();
  if (state.socket) state.socket.stop();
  state.socket = null;
  state.tokens = null;
  setStatus("", "");
  $("login-message").textContent = message || "";
  show("login-view");
  $("login-form").elements.email.focus();
}

async function logOut() {
  // The socket goes first: the logout revokes its token, and that close is no news here.
  closeLive();
  if (state.socket) state.socket.stop();
  state.socket = null;
  try {
    await api("POST", "/v1/auth/logout");
  } catch {
    // Ending the session here matters more than the server's answer.
  }
  endSession("");
}

// -- pages ---------------------------------------------------------------------------------

function route() {
  if (!state.tokens) {
    show("login-view");
    return;
  }
  closeLive();
  state.view += 1;
  const match = /^#\/devices\/([A-Za-z0-9_-]{1,64})$/.exec(location.hash);
  if (match) deviceView(match[1]);
  else devicesView();
}

async function devicesView() {
  show("devices-view");
  const rows = $("devices").tBodies[0];
  const message = $("devices-message");
  message.textContent = "";
  const view = state.view;
  try {
    const [{ networks }, { devices }] = await Promise.all([
      api("GET", "/v1/networks"),
      api("GET", "/v1/devices"),
    ]);
    if (view !== state.view) return;
    state.networks = new Map(networks.map((network) => [network.id, network.name]));
    rows.replaceChildren(
      ...devices.map((device) => {
        const row = element("tr");
        const cell = element("td");
        const link = element("a", device.id);
        link.href = `#/devices/${encodeURIComponent(device.id)}`;
        cell.append(link);
        const network = state.networks.get(device.networkId);
        row.append(
          cell,
          element("td", device.name),
          element("td", network ? `${network} (${device.networkId})` : device.networkId),
        );
        return row;
      }),
    );
    if (devices.length === 0) message.textContent = "No devices you may see.";
  } catch (error) {
    message.textContent = error.message;
  }
}

function closeLive() {
  for (const subscription of state.live) subscription.close();
  state.live = [];
  state.commands = new Map();
}

function prepend(list, item) {
  list.prepend(item);
  while (list.children.length > FEED_LIMIT) list.lastElementChild.remove();
}

function renderNotification(item) {
  const entry = element("li");
  entry.dataset.id = item.id;
  const when = element("time", item.timestamp);
  when.dateTime = item.timestamp;
  entry.append(element("span", item.notification, "name"), when, element("code", json(item.parameters)));
  prepend($("notifications"), entry);
}

function renderCommand(item) {
  let entry = state.commands.get(item.id);
  if (!entry) {
    entry = element("li");
    entry.dataset.commandId = item.id;
    state.commands.set(item.id, entry);
    prepend($("commands"), entry);
  }
  const status = element("span", item.status ?? "pending", "state");
  status.dataset.field = "status";
  if (item.status === null || item.status === undefined) status.classList.add("pending");
  const result = element("code", `result: ${json(item.result)}`);
  result.dataset.field = "result";
  entry.replaceChildren(
    element("span", item.command, "name"),
    status,
    element("span", `#${item.id} · ${item.timestamp} · updated ${item.lastUpdated}`, "meta"),
    element("code", `parameters: ${json(item.parameters)}`),
    result,
  );
}

async function deviceView(deviceId) {
  show("device-view");
  $("device-title").textContent = deviceId;
  $("notifications").replaceChildren();
  $("commands").replaceChildren();
  $("command-message").textContent = "";
  const socket = state.socket;
  const view = state.view;
  try {
    const device = await api("GET", `/v1/devices/${encodeURIComponent(deviceId)}`);
    if (view !== state.view) return;
    $("device-title").textContent = `${device.name} (${device.id})`;
    const { info } = await socket.request("server/info");
    if (view !== state.view || socket !== state.socket) return;
    const since = new Date(Date.parse(info.serverTimestamp) - REPLAY_MINUTES * 60000);
    const failed = (error) => {
      $("command-message").textContent = error.message;
    };
    state.live.push(
      socket.subscribe("notification", { deviceId }, since.toISOString(), (_, item) =>
        renderNotification(item),
      ),
      socket.subscribe("command", { deviceId }, since.toISOString(), (_, item) => renderCommand(item), {
        keepSince: true,
        onError: failed,
      }),
    );
  } catch (error) {
    $("command-message").textContent = error.message;
  }
}

async function sendCommand(event) {
  event.preventDefault();
  const form = event.target;
  const message = $("command-message");
  message.textContent = "";
  const match = /^#\/devices\/([A-Za-z0-9_-]{1,64})$/.exec(location.hash);
  if (!match || !state.socket) return;
  let parameters;
  try {
    const text = form.elements.parameters.value.trim();
    parameters = text ? JSON.parse(text) : null;
  } catch (error) {
    message.textContent = `Parameters: not JSON (${error.message})`;
    return;
  }
  try {
    await state.socket.request("command/insert", {
      deviceId: match[1],
      command: { command: form.elements.command.value, parameters },
    });
  } catch (error) {
    message.textContent = error.message;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("login-form").addEventListener("submit", logIn);
  $("command-form").addEventListener("submit", sendCommand);
  $("logout").addEventListener("click", logOut);
  window.addEventListener("hashchange", route);
  route();
});
