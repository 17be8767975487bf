// Search as you type: asks the JSON API and redraws the list; the form still works without scripts.
(function () {
  const input = document.getElementById("directory-q");
  const list = document.getElementById("directory-results");
  const empty = document.getElementById("directory-empty");
  if (!input || !list) return;
  let timer = null;
  let latest = 0;

  function row(user) {
    const li = document.createElement("li");
    li.className = "user-row";
    const a = document.createElement("a");
    a.href = "/@" + user.username;
    const avatar = document.createElement("span");
    avatar.className = "avatar";
    avatar.setAttribute("aria-hidden", "true");
    avatar.textContent = (user.display_name || user.username).slice(0, 1).toUpperCase();
    const names = document.createElement("span");
    names.className = "names";
    const strong = document.createElement("strong");
    strong.textContent = user.display_name;
    names.appendChild(strong);
    if (user.verified) {
      const badge = document.createElement("span");
      badge.className = "verified";
      badge.title = "Verified";
      badge.textContent = "✓";
      names.appendChild(badge);
    }
    const handle = document.createElement("span");
    handle.className = "handle";
    handle.textContent = "@" + user.username;
    names.appendChild(handle);
    a.append(avatar, names);
    li.appendChild(a);
    return li;
  }

  async function search() {
    const q = input.value.trim().replace(/^@/, "");
    const ticket = ++latest;
    const url = new URL(window.location.href);
    if (q) url.searchParams.set("q", q); else url.searchParams.delete("q");
    history.replaceState(null, "", url);
    if (!q) { list.replaceChildren(); empty.hidden = true; return; }
    const response = await fetch("/api/directory?limit=20&q=" + encodeURIComponent(q), { headers: { Accept: "application/json" } });
    if (!response.ok || ticket !== latest) return;
    const body = await response.json();
    list.replaceChildren(...body.results.map(row));
    empty.hidden = body.results.length > 0;
    empty.querySelector("span").textContent = q;
  }

  input.addEventListener("input", function () {
    clearTimeout(timer);
    timer = setTimeout(search, 150);
  });
})();
