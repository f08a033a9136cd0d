/**
 * Just enough XML for AWS's Query API answers (STS AssumeRole, EC2 DescribeInstances, their
 * errors): elements, text, the five predefined entities and numeric references. Attributes are
 * skipped; DOCTYPE, CDATA, comments and processing instructions other than the XML declaration are
 * refused (AWS sends none, and no entity can be declared, so nothing expands).
 */

/** One element: its local name (any `prefix:` dropped), child elements and text. */
export interface XmlElement {
  name: string;
  children: XmlElement[];
  text: string;
}

const ENTITIES: Readonly<Record<string, string>> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };
const MAX_DEPTH = 32;

function decode(s: string): string {
  return s.replace(/&([#\w]*)(;?)/g, (whole, ref: string, semi: string) => {
    const code = /^#x[0-9a-fA-F]{1,6}$/.test(ref)
      ? parseInt(ref.slice(2), 16)
      : /^#[0-9]{1,7}$/.test(ref)
        ? parseInt(ref.slice(1), 10)
        : undefined;
    const v = code !== undefined && code <= 0x10ffff ? String.fromCodePoint(code) : ENTITIES[ref];
    if (v === undefined || !semi) throw new Error(`unknown entity ${whole.slice(0, 12)}`);
    return v;
  });
}

/** Parses one document into its root element; throws (a plain Error) on anything it does not read. */
export function parseXml(text: string): XmlElement {
  const src = text.replace(/^\uFEFF?\s*(<\?xml[^?]*\?>)?/, '');
  const tag = /<(\/?)([A-Za-z_][\w.:-]*)((?:\s+[\w.:-]+\s*=\s*(?:"[^"]*"|'[^']*'))*)\s*(\/?)>/y;
  const stack: XmlElement[] = [];
  let root: XmlElement | undefined;
  let i = 0;
  while (i < src.length) {
    const lt = src.indexOf('<', i);
    const end = lt < 0 ? src.length : lt;
    const between = src.slice(i, end);
    if (stack.length > 0) stack.at(-1)!.text += decode(between);
    else if (between.trim() !== '') throw new Error('text outside the root element');
    if (lt < 0) break;
    tag.lastIndex = lt;
    const m = tag.exec(src);
    if (!m) throw new Error(`unreadable markup at offset ${lt}`);
    const [, closing, qname, , selfClosing] = m;
    const name = qname!.replace(/^.*:/, '');
    if (closing) {
      const open = stack.pop();
      if (!open || open.name !== name) throw new Error(`unexpected </${name}>`);
    } else {
      if (root && stack.length === 0) throw new Error('more than one root element');
      if (stack.length >= MAX_DEPTH) throw new Error('nested too deeply');
      const el: XmlElement = { name, children: [], text: '' };
      if (stack.length > 0) stack.at(-1)!.children.push(el);
      else root = el;
      if (!selfClosing) stack.push(el);
    }
    i = tag.lastIndex;
  }
  if (!root || stack.length > 0) throw new Error('incomplete document');
  return root;
}

/** The first child element named `name`. */
export function child(el: XmlElement | undefined, name: string): XmlElement | undefined {
  return el?.children.find((c) => c.name === name);
}

/** Follows a path of first children. */
export function path(el: XmlElement | undefined, ...names: string[]): XmlElement | undefined {
  return names.reduce<XmlElement | undefined>((at, n) => child(at, n), el);
}

/** The trimmed text at a path of first children, or undefined. */
export function textAt(el: XmlElement | undefined, ...names: string[]): string | undefined {
  const found = path(el, ...names);
  return found ? found.text.trim() : undefined;
}

/** The error code of an AWS error answer (STS `ErrorResponse/Error/Code`, EC2 `Response/Errors/Error/Code`). */
export function errorCode(body: string): string | undefined {
  let doc: XmlElement;
  try {
    doc = parseXml(body);
  } catch {
    return undefined;
  }
  const code = textAt(doc, 'Error', 'Code') ?? textAt(doc, 'Errors', 'Error', 'Code');
  return code && /^[A-Za-z0-9.]{1,80}$/.test(code) ? code : undefined;
}
