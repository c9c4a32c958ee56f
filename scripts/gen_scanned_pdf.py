#!/usr/bin/env python3
"""An image-only ("scanned") PDF for the OCR test: pages of text PDFs from the evaluation
corpus rendered by pdftoppm (grayscale, 150 dpi) and wrapped as Flate-compressed images, one
per page, with no text layer. Needs poppler-utils; no Python packages.
Writes fixtures/ocr/scanned-policies.pdf (page 1: a German policy, page 2: an English one).
Usage: python3 scripts/gen_scanned_pdf.py
"""
import os, subprocess, tempfile, zlib

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
SOURCES = ["fixtures/kb-corpus/docs/policies/policy-arbeitszeitregelung.pdf",
           "fixtures/kb-corpus/docs/policies/policy-lab-safety.pdf"]
DPI = 150

def render(pdf):
    with tempfile.TemporaryDirectory() as d:
        subprocess.run(["pdftoppm", "-r", str(DPI), "-gray", "-f", "1", "-l", "1", "-singlefile", pdf, d + "/p"], check=True)
        data = open(d + "/p.pgm", "rb").read()
    # PGM (P5): magic, width height, maxval, then the bytes.
    parts = data.split(maxsplit=4)
    assert parts[0] == b"P5" and parts[3] == b"255"
    return int(parts[1]), int(parts[2]), parts[4]

def main():
    pages = [render(os.path.join(ROOT, p)) for p in SOURCES]
    objs = []   # object bodies, numbered from 1
    def add(body):
        objs.append(body)
        return len(objs)
    catalog = add(None); pages_obj = add(None)
    kids = []
    for w, h, pix in pages:
        img = add(b"<< /Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace /DeviceGray /BitsPerComponent 8 "
                  b"/Filter /FlateDecode /Length %d >>\nstream\n" % (w, h, len(z := zlib.compress(pix, 9))) + z + b"\nendstream")
        pw, ph = w * 72 / DPI, h * 72 / DPI
        content = b"q %.2f 0 0 %.2f 0 0 cm /Im0 Do Q" % (pw, ph)
        cont = add(b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream")
        kids.append(add(b"<< /Type /Page /Parent %d 0 R /MediaBox [0 0 %.2f %.2f] /Resources << /XObject << /Im0 %d 0 R >> >> "
                        b"/Contents %d 0 R >>" % (pages_obj, pw, ph, img, cont)))
    objs[catalog - 1] = b"<< /Type /Catalog /Pages %d 0 R >>" % pages_obj
    objs[pages_obj - 1] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (b" ".join(b"%d 0 R" % k for k in kids), len(kids))
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for i, body in enumerate(objs, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
    for o in offsets: out += b"%010d 00000 n \n" % o
    out += b"trailer\n<< /Size %d /Root %d 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, catalog, xref)
    path = os.path.join(ROOT, "fixtures/ocr/scanned-policies.pdf")
    open(path, "wb").write(out)
    print("wrote", path, len(out), "bytes")

if __name__ == "__main__":
    main()
