/** Decodes a binfmt_misc rule field: \xHH escapes and literal characters (Debian writes `\x7fELF`). */
export function decodeBinfmtField(field: string): Buffer {
  const bytes: number[] = [];
  for (let i = 0; i < field.length; i++) {
    if (field[i] === '\\' && field[i + 1] === 'x') {
      bytes.push(parseInt(field.slice(i + 2, i + 4), 16));
      i += 3;
    } else {
      bytes.push(field.charCodeAt(i));
    }
  }
  return Buffer.from(bytes);
}
