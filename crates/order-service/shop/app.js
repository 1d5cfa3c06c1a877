// The shop's checkout page: the client side of idempotency.
//
// A checkout is sent with an Idempotency-Key; the service makes exactly one
// order per key. This page makes one key per checkout and keeps it until the
// order is confirmed, so that a double click, a lost answer, a timeout, a
// 503 or a reload of the page can never place a second order.
//
// Plain JavaScript, no dependencies, nothing loaded from elsewhere: the page
// works offline on a LAN. Served by order-service at /shop (embedded in the
// binary).
'use strict';

const MAX_ATTEMPTS = 6;
const REQUEST_TIMEOUT_MS = 10000;

const state = {
  token: null,
  products: new Map(),
  cart: {},
  inFlight: false,
};

const $ = (id) => document.getElementById(id);

// ---------------------------------------------------------------- storage
// sessionStorage: one tab's memory, kept across reloads, gone with the tab.
const saved = {
  get(name) {
    try { return JSON.parse(sessionStorage.getItem(name)); } catch { return null; }
  },
  set(name, value) { sessionStorage.setItem(name, JSON.stringify(value)); },
  drop(name) { sessionStorage.removeItem(name); },
};

function loadCart() {
  state.cart = saved.get('cart') || {};
}

function saveCart() {
  saved.set('cart', state.cart);
}

/** The cart as the checkout sends it: [sku, quantity] pairs in SKU order. */
function cartLines() {
  return Object.entries(state.cart)
    .filter(([, quantity]) => quantity > 0)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

// ---------------------------------------------------------- the key
// AUDIT-106: Idempotency key
// One key per checkout: made when "Place order" is first pressed for this
// cart, kept in sessionStorage together with the cart it belongs to (so a
// reload of the page keeps it), sent with every retry, and dropped only when
// the order is confirmed or the cart changes (a different cart is a
// different checkout, and gets a new key).
function checkoutKey() {
  const cart = JSON.stringify(cartLines());
  const pending = saved.get('checkout');
  if (pending && pending.cart === cart && typeof pending.key === 'string') {
    return pending.key;
  }
  const key = uuidV4();
  saved.set('checkout', { key, cart });
  return key;
}

// AUDIT-106: Idempotency key: a changed cart drops the key of the old one.
function dropKeyIfCartChanged() {
  const pending = saved.get('checkout');
  if (pending && pending.cart !== JSON.stringify(cartLines())) {
    saved.drop('checkout');
  }
}

/** A random UUIDv4 (crypto.getRandomValues works on plain http too). */
function uuidV4() {
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

// ------------------------------------------------------------------- API
/** One request; throws on a network error or a timeout. */
async function api(method, path, { body, key } = {}) {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), REQUEST_TIMEOUT_MS);
  try {
    const headers = { Authorization: `Bearer ${state.token}` };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    if (key) {
      headers['Idempotency-Key'] = key;
      headers['Order-Channel'] = 'shop'; // recorded with the order
    }
    const response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: controller.signal,
      cache: 'no-store',
    });
    let data = null;
    try { data = await response.json(); } catch { /* not JSON */ }
    return { status: response.status, data };
  } finally {
    clearTimeout(timer);
  }
}

// ----------------------------------------------------------------- money
function money(minor, currency) {
  try {
    const format = new Intl.NumberFormat(undefined, { style: 'currency', currency });
    const digits = format.resolvedOptions().maximumFractionDigits;
    return format.format(minor / 10 ** digits);
  } catch {
    return `${minor} ${currency}`;
  }
}

// ---------------------------------------------------------------- status
function say(text, kind = '') {
  const status = $('status');
  status.textContent = text;
  status.className = kind;
}

function setInFlight(inFlight) {
  state.inFlight = inFlight;
  $('place-order').disabled = inFlight || cartLines().length === 0;
  $('place-order').setAttribute('aria-busy', inFlight ? 'true' : 'false');
  $('try-again').disabled = inFlight;
}

// -------------------------------------------------------------- products
async function loadProducts() {
  const products = [];
  let after = null;
  do {
    const query = after ? `?limit=100&after=${encodeURIComponent(after)}` : '?limit=100';
    const answer = await api('GET', `/v1/products${query}`);
    if (answer.status === 401) return signOut('Your sign-in is not valid any more.');
    if (answer.status !== 200) throw new Error(`products: ${answer.status}`);
    products.push(...answer.data.products);
    after = answer.data.next;
  } while (after);
  state.products = new Map(products.map((p) => [p.sku, p]));
  renderProducts();
  renderCart();
}

function renderProducts() {
  const list = $('products');
  list.replaceChildren();
  for (const product of state.products.values()) {
    const item = document.createElement('li');
    item.dataset.sku = product.sku;
    const name = document.createElement('span');
    name.className = 'name';
    name.textContent = product.name;
    const price = document.createElement('span');
    price.className = 'price';
    price.textContent = money(product.unit_price, product.currency);
    const stock = document.createElement('span');
    stock.className = product.on_hand > 0 ? 'stock' : 'stock out';
    stock.textContent = product.on_hand > 0 ? `${product.on_hand} in stock` : 'out of stock';
    const quantity = document.createElement('input');
    quantity.type = 'number';
    quantity.className = 'qty';
    quantity.min = '1';
    quantity.max = '10000';
    quantity.value = '1';
    quantity.setAttribute('aria-label', `Quantity of ${product.name}`);
    const add = document.createElement('button');
    add.type = 'button';
    add.className = 'add';
    add.textContent = 'Add';
    add.setAttribute('aria-label', `Add ${product.name} to the cart`);
    add.addEventListener('click', () => {
      const n = Math.max(1, Math.min(10000, parseInt(quantity.value, 10) || 1));
      setQuantity(product.sku, (state.cart[product.sku] || 0) + n);
      say(`${n} × ${product.name} added to the cart.`);
    });
    item.append(name, price, stock, quantity, add);
    list.append(item);
  }
}

// ------------------------------------------------------------------ cart
function setQuantity(sku, quantity) {
  if (quantity > 0) {
    state.cart[sku] = Math.min(10000, quantity);
  } else {
    delete state.cart[sku];
  }
  saveCart();
  dropKeyIfCartChanged();
  $('try-again').hidden = true;
  renderCart();
}

function renderCart() {
  const list = $('cart');
  list.replaceChildren();
  const lines = cartLines();
  let total = 0;
  let currency = null;
  for (const [sku, quantity] of lines) {
    const product = state.products.get(sku);
    const label = product ? product.name : sku;
    const item = document.createElement('li');
    item.dataset.sku = sku;
    const name = document.createElement('span');
    name.className = 'name';
    name.textContent = label;
    const input = document.createElement('input');
    input.type = 'number';
    input.min = '0';
    input.max = '10000';
    input.value = String(quantity);
    input.setAttribute('aria-label', `Quantity of ${label} in the cart`);
    input.addEventListener('change', () => {
      // An emptied or garbled field keeps the line; 0 (or Remove) drops it.
      const wanted = parseInt(input.value, 10);
      if (Number.isNaN(wanted) || wanted < 0) {
        input.value = String(state.cart[sku] || 0);
        return;
      }
      setQuantity(sku, wanted);
    });
    const remove = document.createElement('button');
    remove.type = 'button';
    remove.className = 'secondary remove';
    remove.textContent = 'Remove';
    remove.setAttribute('aria-label', `Remove ${label} from the cart`);
    remove.addEventListener('click', () => setQuantity(sku, 0));
    item.append(name, input, remove);
    list.append(item);
    if (product) {
      total += product.unit_price * quantity;
      currency = product.currency;
    }
  }
  $('cart-empty').hidden = lines.length > 0;
  $('cart-total').textContent = currency ? `Total ${money(total, currency)}` : '';
  setInFlight(state.inFlight);
}

// -------------------------------------------------------------- checkout
function backoff(attempt) {
  // Exponential with jitter: 0.4 s, 0.8 s, ... up to 8 s, each between half
  // and all of that, so that retrying pages do not arrive in step.
  const ceiling = Math.min(8000, 400 * 2 ** (attempt - 1));
  return ceiling / 2 + Math.random() * (ceiling / 2);
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function placeOrder() {
  if (state.inFlight) return;
  const lines = cartLines();
  if (lines.length === 0) return;
  const key = checkoutKey();
  const body = { lines: lines.map(([sku, quantity]) => ({ sku, quantity })) };
  setInFlight(true);
  $('try-again').hidden = true;
  say('Placing your order…', 'trying');
  for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt += 1) {
    let answer = null;
    try {
      answer = await api('POST', '/v1/checkout', { body, key });
    } catch {
      answer = null; // no answer: the order may or may not exist
    }
    if (answer && (answer.status === 201 || answer.status === 200)) {
      confirmed(answer.data);
      return;
    }
    const retryable = !answer || answer.status === 429 || answer.status >= 500;
    if (!retryable) {
      refused(answer);
      return;
    }
    if (attempt < MAX_ATTEMPTS) {
      say(
        `Still trying… (attempt ${attempt + 1} of ${MAX_ATTEMPTS}). `
          + 'However many tries it takes, you will be charged for one order.',
        'trying',
      );
      await sleep(backoff(attempt));
    }
  }
  setInFlight(false);
  say('We could not reach the shop. Your cart is kept: press “Try again” (it cannot order twice).', 'error');
  $('try-again').hidden = false;
  $('try-again').focus();
}

function confirmed(order) {
  saved.drop('checkout');
  state.cart = {};
  saveCart();
  setInFlight(false);
  renderCart();
  renderPlaced(order);
  say(`Order ${order.order_number} placed.`, 'done');
  loadProducts().catch(() => {});
  loadOrders().catch(() => {});
}

function refused(answer) {
  setInFlight(false);
  const problem = answer.data || {};
  const slug = String(problem.type || '').split('/').pop();
  const nameOf = (sku) => (state.products.get(sku) || { name: sku }).name;
  if (answer.status === 401) {
    signOut('Your sign-in has expired: sign in again, your cart is kept.');
    return;
  }
  if (slug === 'out-of-stock') {
    const available = problem.available ?? 0;
    say(
      available > 0
        ? `Only ${available} of ${nameOf(problem.sku)} left: you asked for ${problem.requested}. Change the quantity and place the order again.`
        : `${nameOf(problem.sku)} is out of stock: remove it to order the rest.`,
      'error',
    );
    loadProducts().catch(() => {});
    return;
  }
  if (slug === 'unknown-sku') {
    say(`${nameOf(problem.sku)} is no longer sold: remove it to order the rest.`, 'error');
    return;
  }
  if (slug === 'idempotency-key-reused') {
    saved.drop('checkout');
    say('This checkout was already used for another order. Press “Place order” again.', 'error');
    return;
  }
  say(problem.detail || `The shop refused the order (${answer.status}).`, 'error');
}

function renderPlaced(order) {
  $('placed-number').textContent = order.order_number;
  $('placed-status').textContent = order.status;
  const body = $('placed-lines');
  body.replaceChildren();
  for (const line of order.lines) {
    const row = document.createElement('tr');
    for (const text of [
      line.name,
      String(line.quantity),
      money(line.unit_price, order.currency),
      money(line.line_total, order.currency),
    ]) {
      const cell = document.createElement('td');
      cell.textContent = text;
      row.append(cell);
    }
    body.append(row);
  }
  $('placed-total').textContent = money(order.total, order.currency);
  $('placed').hidden = false;
  $('placed').focus();
}

// ---------------------------------------------------------------- orders
async function loadOrders() {
  const answer = await api('GET', '/v1/orders?limit=20');
  if (answer.status !== 200) return;
  const list = $('orders');
  list.replaceChildren();
  for (const order of answer.data.orders) {
    const item = document.createElement('li');
    item.dataset.order = order.id;
    const when = new Date(order.placed_at).toLocaleString();
    item.textContent = `${order.order_number} · ${when} · ${order.status} · ${money(order.total, order.currency)}`;
    list.append(item);
  }
  if (answer.data.orders.length === 0) {
    const item = document.createElement('li');
    item.textContent = 'No orders yet.';
    list.append(item);
  }
}

// --------------------------------------------------------------- sign-in
function takeTokenFromFragment() {
  // #token=... is read here and removed from the address bar: a fragment
  // is never sent to a server, and is not kept in the history either.
  const match = /(?:^#|&)token=([^&]+)/.exec(window.location.hash);
  if (match) {
    saved.set('token', decodeURIComponent(match[1]));
    window.history.replaceState(null, '', window.location.pathname + window.location.search);
  }
}

function signOut(message) {
  saved.drop('token');
  state.token = null;
  $('shop').hidden = true;
  $('sign-in').hidden = false;
  $('who').hidden = true;
  if (message) {
    const note = document.createElement('p');
    note.className = 'hint';
    note.textContent = message;
    $('token-form').prepend(note);
  }
}

function whoFromToken(token) {
  try {
    const claims = JSON.parse(atob(token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/')));
    return `${claims.sub} · ${claims.tenant}`;
  } catch {
    return '';
  }
}

async function start() {
  takeTokenFromFragment();
  state.token = saved.get('token');
  loadCart();
  if (!state.token) {
    signOut();
    return;
  }
  $('sign-in').hidden = true;
  $('shop').hidden = false;
  $('who').textContent = whoFromToken(state.token);
  $('who').hidden = false;
  renderCart();
  if (saved.get('checkout') && cartLines().length > 0) {
    say('Your last attempt to place this order may have gone through. Press “Place order”: it will not order twice.');
  }
  try {
    await loadProducts();
    await loadOrders();
  } catch {
    say('The shop is not answering right now; reload the page in a moment.', 'error');
  }
}

document.addEventListener('DOMContentLoaded', () => {
  $('token-form').addEventListener('submit', (event) => {
    event.preventDefault();
    saved.set('token', $('token-input').value.trim());
    start();
  });
  $('place-order').addEventListener('click', placeOrder);
  $('try-again').addEventListener('click', placeOrder);
  start();
});
