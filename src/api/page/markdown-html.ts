/**
 * A rollback record's Markdown as HTML for the page. markdown-it with `html: false`: raw HTML in
 * the Markdown (an app's log line, a reason typed by a person) is escaped and shown as text, links
 * with unsafe schemes (javascript:, vbscript:, data: other than images) are refused by its
 * validateLink, and the tables, code fences and lists of the records come out as CommonMark + GFM
 * tables. The only image a record holds is its own timeline (`<id>.svg` beside it): it is pointed
 * at the page's route for it; any other image is shown as its alt text (the page fetches nothing
 * from elsewhere).
 */
import MarkdownIt from 'markdown-it';
import { escapeXml } from '../../records/timeline-svg.js';

const markdown = new MarkdownIt({ html: false, linkify: false, typographer: false });

interface RenderEnv {
  /** The record's timeline file name as the Markdown links it, and where the page serves it. */
  timeline: { name: string; url: string } | null;
}

markdown.renderer.rules.image = (tokens, index, _options, env: RenderEnv) => {
  const token = tokens[index]!;
  const alt = token.content;
  if (env.timeline !== null && token.attrGet('src') === env.timeline.name) {
    return `<img class="timeline" src="${escapeXml(env.timeline.url)}" alt="${escapeXml(alt)}" width="900" loading="lazy">`;
  }
  return `<span class="image-alt">[${escapeXml(alt)}]</span>`;
};

/** The record's Markdown as HTML; `timeline` maps its SVG to the URL the page serves it at. */
export function recordHtml(text: string, timeline: RenderEnv['timeline']): string {
  return markdown.render(text, { timeline } satisfies RenderEnv);
}
