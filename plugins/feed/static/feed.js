// The feed's pages, made livelier; every one of them also works without this script.
//
// - The composer counts characters as people count them (grapheme clusters) and,
//   over 280 for someone without long posts, shows the premium hint. The server judges.
// - Timelines load their next page as the "Load more" item comes into view
//   (GET …?cursor=…&fragment=1 answers just the list items).
// - Like, Unlike and Repost post in place (the form with fragment=1 answers the post's action bar).
// - On the home timeline, a "Show new posts" bar appears when people you follow post.
(function () {
  "use strict";

  // Characters ---------------------------------------------------------------------------
  const segmenter = typeof Intl !== "undefined" && Intl.Segmenter ? new Intl.Segmenter(undefined, { granularity: "grapheme" }) : null;

  function characters(text) {
    if (!segmenter) return Array.from(text).length;  // code points: close, and never fewer than people see
    let count = 0;
    for (const _ of segmenter.segment(text)) count++;
    return count;
  }

  function composer(form) {
    const text = form.querySelector("[data-composer-text]");
    const counter = form.querySelector("[data-counter]");
    const hint = form.querySelector("[data-longform-hint]");
    if (!text || !counter) return;
    const limit = Number(counter.dataset.limit);
    const label = counter.dataset.limitLabel || String(limit);
    function update() {
      const count = characters(text.value);
      counter.textContent = count + " / " + label;
      counter.classList.toggle("over", count > limit);
      if (hint) hint.hidden = count <= 280;  // only free users have the hint: their limit is 280
    }
    text.addEventListener("input", update);
    update();
  }

  document.querySelectorAll("[data-composer]").forEach(composer);

  // Times in the reader's own zone ------------------------------------------------------------
  const when = typeof Intl !== "undefined" ? new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" }) : null;

  function localTimes(root) {
    if (!when) return;
    root.querySelectorAll("time[datetime]").forEach((element) => {
      const moment = new Date(element.getAttribute("datetime"));
      if (!isNaN(moment)) {
        element.title = element.textContent + " UTC";
        element.textContent = when.format(moment);
      }
    });
  }

  localTimes(document);

  // Fragments of HTML from this site's own pages, which escape what people wrote.
  function parse(html) {
    const template = document.createElement("template");
    template.innerHTML = html;
    localTimes(template.content);
    return template.content;
  }

  // Infinite scroll -----------------------------------------------------------------------
  const observer = "IntersectionObserver" in window
    ? new IntersectionObserver((entries) => {
      entries.forEach((entry) => { if (entry.isIntersecting) loadMore(entry.target); });
    }, { rootMargin: "0px 0px 600px 0px" })
    : null;

  function watch(root) {
    if (observer) root.querySelectorAll("[data-load-more]").forEach((item) => observer.observe(item));
  }

  async function loadMore(item) {
    const link = item.querySelector("a[href]");
    if (!link || item.dataset.loading) return;
    item.dataset.loading = "1";
    observer.unobserve(item);
    const list = item.parentNode;
    const url = new URL(link.href, location.href);
    url.searchParams.set("fragment", "1");
    link.textContent = "Loading…";
    try {
      const response = await fetch(url, { headers: { Accept: "text/html" }, credentials: "same-origin" });
      // Redirected: signed out meanwhile, or the page moved; the link still leads there.
      if (!response.ok || response.redirected) throw new Error("status " + response.status);
      item.replaceWith(parse(await response.text()));
      if (list) watch(list);
    } catch (error) {
      // Leave the link to be clicked: it opens the next page without the script.
      link.textContent = "Load more";
      delete item.dataset.loading;
    }
  }

  watch(document);

  // Likes and reposts in place, and a question before deleting -----------------------------
  document.addEventListener("submit", async (event) => {
    const form = event.target;
    if (!(form instanceof HTMLFormElement)) return;
    if (form.dataset.confirm && !window.confirm(form.dataset.confirm)) {
      event.preventDefault();
      return;
    }
    const bar = form.closest("[data-post-actions]");
    if (!form.dataset.inline || !bar || form.dataset.busy) return;
    event.preventDefault();
    form.dataset.busy = "1";
    const kind = form.dataset.inline;
    const body = new URLSearchParams(new FormData(form));
    body.set("fragment", "1");
    try {
      const response = await fetch(form.action, { method: "POST", body, headers: { Accept: "text/html" }, credentials: "same-origin" });
      if (!response.ok || response.redirected) throw new Error("status " + response.status);
      const fresh = parse(await response.text());
      const replacement = fresh.querySelector("[data-post-actions]");
      bar.replaceWith(fresh);
      const again = replacement && replacement.querySelector('[data-inline="' + kind + '"] button');
      if (again) again.focus();
    } catch (error) {
      // Let the server show what happened: liking and reposting twice change nothing.
      delete form.dataset.busy;
      HTMLFormElement.prototype.submit.call(form);
    }
  });

  // New posts on the home timeline ------------------------------------------------------------
  const newPosts = document.querySelector("[data-new-posts]");
  if (newPosts && window.everything && window.everything.realtime) {
    let waiting = 0;
    window.everything.realtime.on("feed.new_post", () => {
      waiting++;
      newPosts.querySelector("a").textContent = waiting === 1 ? "Show 1 new post" : "Show " + waiting + " new posts";
      newPosts.hidden = false;
    });
  }
})();
