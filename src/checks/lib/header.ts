// Builds header fields that checks hand back in their verdicts (Received-SPF,
// Authentication-Results): one field, cleaned of anything that could end it early, folded at
// spaces so no line passes 78 characters where it can be helped (RFC 5322 §2.1.1, §2.2.3).

/** "Name: value" with CR, LF and other controls turned into spaces, folded with CRLF + space. No final CRLF. */
export function headerField(name: string, value: string): string {
  // Unfold what a library may have folded, then refuse every control character: a header from
  // client-controlled text (a HELO name, a sender address) must never start a new field.
  const clean = value.replace(/\r?\n[ \t]+/g, ' ').replace(/[\x00-\x1f\x7f]+/g, ' ').trim();
  return fold(`${name}: ${clean}`);
}

function fold(line: string, width = 78): string {
  const words = line.split(' ');
  const out: string[] = [];
  let cur = words.shift() ?? '';
  for (const w of words) {
    if (cur.length + 1 + w.length > width && cur.trim() !== '') {
      out.push(cur);
      // The space stays at the start of the next line, so unfolding gives the value back exactly.
      cur = ` ${w}`;
    } else {
      cur += ` ${w}`;
    }
  }
  out.push(cur);
  return out.join('\r\n');
}
