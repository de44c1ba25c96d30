// Live updates: the server tells this page of every upload stored or deleted, by any
// process, over a WebSocket (the protocol is at the top of live.py). Without this
// script the page works as before: a reload shows what is new.
const live = document.querySelector(".uploads").dataset.live;
const MAX_DELAY = 30;  // seconds between two tries to reconnect, at most
let delay = 1;  // seconds before the next try: doubled at each failure

// upload.js replaces the section after an upload: always look it up afresh.
const section = () => document.querySelector(".uploads");
const gallery = () => section().querySelector(".gallery");
const shown = () => [...gallery().children];

function item(upload) {
  // The file's name is text: set as textContent and alt, never parsed as HTML.
  const li = document.createElement("li");
  li.dataset.id = upload.id;
  li.dataset.uploaded = upload.uploaded;
  const link = document.createElement("a");
  link.href = upload.original;
  const image = document.createElement("img");
  image.alt = upload.filename;
  if (upload.thumbnail) {
    link.className = "original";
    image.src = upload.thumbnail;
  } else {
    link.className = "original file";
    link.download = "";
    image.src = section().dataset.fileIcon;
  }
  link.append(image);
  const span = (className, text) => {
    const element = document.createElement("span");
    element.className = className;
    element.textContent = text;
    return element;
  };
  const size = upload.thumbnail ? `${upload.size}, ${upload.width} × ${upload.height}` : upload.size;
  li.append(link, span("name", upload.filename), span("size", size), span("type", upload.contentType));
  return li;
}

function newer(a, b) {  // whether upload a comes before b in the list: newest first
  return a.uploaded > b.uploaded || (a.uploaded === b.uploaded && a.id > b.id);
}

function showEmpty() {
  const empty = section().querySelector(".empty");
  if (gallery().children.length === 0 && !empty) {
    const note = document.createElement("p");
    note.className = "empty";
    note.textContent = "Nothing uploaded yet: choose a file above.";
    gallery().before(note);
  } else if (gallery().children.length > 0 && empty) {
    empty.remove();
  }
}

function showList(uploads) {  // the newest uploads: keep what is shown of them, drop the rest
  const kept = new Map(shown().map((li) => [li.dataset.id, li]));
  gallery().replaceChildren(...uploads.map((upload) => kept.get(upload.id) || item(upload)));
  showEmpty();
}

function add(upload) {
  const items = shown();
  if (items.some((li) => li.dataset.id === upload.id)) return;  // in the list already
  const after = items.find((li) => newer(upload, li.dataset));
  gallery().insertBefore(item(upload), after || null);
  for (const li of shown().slice(Number(section().dataset.newest))) li.remove();
  showEmpty();
}

function remove(id) {
  shown().find((li) => li.dataset.id === id)?.remove();
  showEmpty();
}

function connect() {
  const url = new URL(live, location.href);
  url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  const socket = new WebSocket(url);
  let now = false;  // reconnect at once, not after the delay
  socket.addEventListener("message", (event) => {
    const message = JSON.parse(event.data);
    if (message.type === "list") {
      showList(message.uploads);
      delay = 1;  // this connection works: the next failure starts over
    } else if (message.type === "upload") {
      add(message.upload);
    } else if (message.type === "delete") {
      remove(message.id);
    } else if (message.type === "reload") {
      now = true;
      socket.close();
    }
  });
  socket.addEventListener("close", () => {
    // After 1, 2, 4 ... 30 s, each between half and all of it: 10,000 pages whose
    // server stopped do not all come back in the same instant.
    const wait = now ? 0 : delay * (0.5 + Math.random() / 2);
    delay = Math.min(delay * 2, MAX_DELAY);
    setTimeout(connect, wait * 1000);
  });
}

if (live) connect();
