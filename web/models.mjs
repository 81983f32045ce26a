// The model picker: the exports `python -m serve.web` lists in its index.json, described from their manifests.
import { PageError } from "./pixelcnn.mjs";

const NUMBERS = ["height", "width", "channels", "levels", "num_classes"];

// [{name, url (absolute), height, width, channels, levels, num_classes, distribution, ...}], or [] when the host
// has no index (a plain static host): the page then shows the one export it was given.
export async function loadIndex(url) {
  let response;
  try {
    response = await fetch(url);
  } catch {
    return [];
  }
  if (response.status === 404) return [];
  if (!response.ok) throw new PageError(`cannot fetch the model index ${url}: HTTP ${response.status}`);
  let doc;
  try {
    doc = await response.json();
  } catch (e) {
    throw new PageError(`the model index ${url} is not JSON: ${e.message}`);
  }
  const entries = doc?.exports;
  if (!Array.isArray(entries) || entries.some((e) => typeof e?.name !== "string" || typeof e.url !== "string" || NUMBERS.some((k) => !Number.isInteger(e[k]))))
    throw new PageError(`the model index ${url} is not a list of exports (name, url, ${NUMBERS.join(", ")})`);
  return entries.map((e) => ({ ...e, url: new URL(e.url, url).href }));
}

// "gated_mnist: 28×28 grey, 2 levels, softmax, 10 classes"
export function describe(m) {
  const colour = m.channels === 3 ? "RGB" : m.channels === 1 ? "grey" : `${m.channels} channels`;
  const output = m.distribution === "logistic_mixture" ? `logistic mixture of ${m.mixtures}` : m.distribution || "softmax";
  const classes = m.num_classes ? `, ${m.num_classes} classes` : "";
  const from = m.dataset ? ` (${m.architecture ?? "PixelCNN"} on ${m.dataset})` : "";
  return `${m.name}: ${m.height}×${m.width} ${colour}, ${m.levels} levels, ${output}${classes}${from}`;
}

// Fill the <select>; choosing another model reloads the page on it (a fresh runtime session, the other settings kept).
export function showPicker(select, models, currentUrl) {
  const known = models.some((m) => m.url === currentUrl);
  const options = known ? models : [...models, { name: currentUrl, url: currentUrl, custom: true }];
  for (const m of options) {
    const option = document.createElement("option");
    option.value = m.url;
    option.dataset.name = m.name;
    option.textContent = m.custom ? `${m.url} (from the export= parameter)` : describe(m);
    option.selected = m.url === currentUrl;
    select.append(option);
  }
  select.onchange = () => {
    const params = new URLSearchParams(location.search);
    params.set("export", select.value);
    location.search = params.toString();
  };
}
