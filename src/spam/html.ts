// HTML to text for the tokenizer: a single regular-expression pass over the tags, no DOM (a
// parser library costs ten times as much per message and spam needs no layout). Collects the
// link targets and counts images, which the tokenizer and the rules use.

export interface HtmlText {
  /** The visible text, entities decoded, whitespace collapsed, one line per block. */
  readonly text: string;
  /** href / src targets of links, forms and image maps, as written. */
  readonly links: readonly string[];
  readonly images: number;
}

// Tags after which a browser starts a new line or cell: they separate words. Every other tag
// (font, b, span, a …) joins its neighbours, as a browser does — "Via<b></b>gra" reads Viagra.
const BREAKING = new Set([
  'address', 'article', 'aside', 'blockquote', 'br', 'caption', 'center', 'dd', 'div', 'dl', 'dt', 'fieldset',
  'figcaption', 'figure', 'footer', 'form', 'h1', 'h2', 'h3', 'h4', 'h5', 'h6', 'header', 'hr', 'img', 'input',
  'li', 'main', 'nav', 'ol', 'option', 'p', 'pre', 'section', 'select', 'table', 'tbody', 'td', 'textarea',
  'tfoot', 'th', 'thead', 'title', 'tr', 'ul', 'body', 'html', 'head', 'meta', 'button', 'label',
]);

const ENTITIES: Readonly<Record<string, string>> = {
  nbsp: ' ', amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", copy: '©', reg: '®', trade: '™', euro: '€',
  pound: '£', yen: '¥', cent: '¢', middot: '·', bull: '•', hellip: '…', mdash: '—', ndash: '–', laquo: '«',
  raquo: '»', ldquo: '“', rdquo: '”', lsquo: '‘', rsquo: '’', times: '×', deg: '°', sect: '§', para: '¶',
  shy: '', zwnj: '', zwj: '', iexcl: '¡', iquest: '¿', aacute: 'á', eacute: 'é', iacute: 'í', oacute: 'ó',
  uacute: 'ú', ntilde: 'ñ', agrave: 'à', egrave: 'è', auml: 'ä', ouml: 'ö', uuml: 'ü', szlig: 'ß', ccedil: 'ç',
  Aacute: 'Á', Eacute: 'É', Auml: 'Ä', Ouml: 'Ö', Uuml: 'Ü', Ntilde: 'Ñ',
};

/** Decodes character references (HTML5 §13.5); unknown names are left as written. */
export function decodeEntities(s: string): string {
  if (s.indexOf('&') < 0) return s;
  return s.replace(/&(#[xX][0-9a-fA-F]{1,6}|#[0-9]{1,7}|[a-zA-Z][a-zA-Z0-9]{1,31});?/g, (whole, ref: string) => {
    if (ref.charCodeAt(0) === 35 /* # */) {
      const code = ref[1] === 'x' || ref[1] === 'X' ? parseInt(ref.slice(2), 16) : parseInt(ref.slice(1), 10);
      if (!Number.isFinite(code) || code <= 0 || code > 0x10ffff || (code >= 0xd800 && code <= 0xdfff)) return ' ';
      // Zero-width and soft-hyphen characters exist in spam only to split words.
      if (code === 0xad || code === 0x200b || code === 0x200c || code === 0x200d || code === 0xfeff) return '';
      return String.fromCodePoint(code);
    }
    return ENTITIES[ref] ?? whole;
  });
}

// Attributes are bounded so that a stray "<" in a long text cannot make the scan quadratic.
const TAG_NAME = /^<(\/?)([a-zA-Z][a-zA-Z0-9:-]{0,40})(?=[\s/>])/;
const LINK_TAGS = new Set(['a', 'img', 'area', 'form', 'body', 'td', 'table', 'iframe']);
const LINK_ATTR = /\b(?:href|src|action|background)\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+))/gi;

const HIDDEN = /<(span|font|div|b|i|u|em|strong|small|p)\b[^>]{0,300}?style\s*=\s*["'][^"'>]{0,300}?(?:display\s*:\s*none|visibility\s*:\s*hidden|font-size\s*:\s*0(?:px|pt|em|%)?\s*(?:;|["']))[^>]{0,300}>[^<]{0,200}<\/\1\s*>/gi;

export function htmlToText(html: string): HtmlText {
  const links: string[] = [];
  let images = 0;
  // Comments vanish without a space (they are used to split words); script and style bodies
  // are not text.
  const clean = html
    .replace(/<!--[\s\S]*?(?:-->|$)/g, '')
    // Text styled invisible is not what the reader sees: spam hides junk inside its words with
    // it ("hac<span style="display:none">qz</span>ker"). Only a short element holding no tags.
    .replace(HIDDEN, '')
    .replace(/<(script|style)\b[^>]{0,1000}>[\s\S]*?(?:<\/\1\s*>|$)/gi, ' ');
  // A scan, not one regular expression over the document: the next ">" is found once and
  // reused, so text full of stray "<" costs linear time.
  const parts: string[] = [];
  let pos = 0;
  let gt = -2;
  for (;;) {
    const lt = clean.indexOf('<', pos);
    if (lt < 0) break;
    if (gt < lt) gt = gt === -1 ? -1 : clean.indexOf('>', lt);
    if (gt < 0) break; // no ">" anywhere after: the rest is text
    const tag = TAG_NAME.exec(clean.slice(lt, Math.min(gt + 1, lt + 48)));
    if (!tag || gt - lt > 4000) {
      parts.push(clean.slice(pos, lt + 1));
      pos = lt + 1;
      continue;
    }
    parts.push(clean.slice(pos, lt));
    const name = tag[2]!.toLowerCase();
    const attrs = clean.slice(lt + tag[0].length, gt);
    if (attrs.length > 0 && LINK_TAGS.has(name)) {
      for (const m of attrs.matchAll(LINK_ATTR)) {
        const url = (m[1] ?? m[2] ?? m[3] ?? '').trim();
        if (url && links.length < 500) links.push(decodeEntities(url));
      }
    }
    if (name === 'img') images++;
    if (BREAKING.has(name)) parts.push('\n');
    pos = gt + 1;
  }
  parts.push(clean.slice(pos));
  const text = parts.join('');
  return { text: collapse(decodeEntities(text)), links, images };
}

// Blocks stay on lines of their own (the tokenizer tells a heading from running text by its line).
function collapse(s: string): string {
  return s
    .replace(/[ \t\r\f\v\u00a0]+/g, ' ')
    .replace(/ ?\n[\s\u00a0]*/g, '\n')
    .trim();
}
