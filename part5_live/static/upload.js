// The form works without this script; with it, the page shows a progress bar
// and stays put. XMLHttpRequest, unlike fetch(), reports how much of the body has
// been sent. The XSRF token is in the form's action already.
const form = document.querySelector("form.upload");
const progress = form.querySelector("progress");
const status = form.querySelector(".status");

function humanSize(size) {
  if (size < 1024) return `${size} bytes`;
  for (const unit of ["KiB", "MiB", "GiB", "TiB"]) {
    size /= 1024;
    if (size < 1024 || unit === "TiB") return `${size.toFixed(1)} ${unit}`;
  }
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  const file = form.elements.file.files[0];
  if (file.size > Number(form.dataset.maxSize)) {
    status.textContent = `That file is too big: the limit is ${humanSize(Number(form.dataset.maxSize))}.`;
    return;
  }
  const request = new XMLHttpRequest();
  request.open("POST", form.action);
  request.responseType = "document";  // the page we are sent to, or an error page
  request.upload.addEventListener("progress", (event) => {
    progress.max = event.total;
    progress.value = event.loaded;
    status.textContent = `${humanSize(event.loaded)} of ${humanSize(event.total)}`;
  });
  request.addEventListener("load", () => {
    if (request.status === 200) {  // the redirect to this page, followed
      document.querySelector(".uploads").replaceWith(request.response.querySelector(".uploads"));
      status.textContent = `Uploaded ${file.name} (${humanSize(file.size)}).`;
      form.reset();
    } else {
      const error = request.response && request.response.querySelector(".error");
      status.textContent = error ? error.textContent : `The upload failed (${request.status}).`;
    }
    form.querySelector("button").disabled = false;
  });
  request.addEventListener("error", () => {
    status.textContent = "The upload stopped: the connection was lost.";
    form.querySelector("button").disabled = false;
  });
  progress.value = 0;
  progress.hidden = false;
  form.querySelector("button").disabled = true;
  request.send(new FormData(form));
});
