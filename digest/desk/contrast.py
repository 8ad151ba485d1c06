"""Text contrast (WCAG 2.x, AA) of a rendered, inlined email, in the light
palette and, when the template has one, the dark palette.

Each element with text of its own is checked with the colours the template
actually applies (see ``desk.css``): its colour, its own or inherited (a link
without one is the browser's blue), over its background, its own or the
nearest ancestor's ``background-color`` or ``bgcolor`` (white when none has
one; translucent colours are composited). Hidden elements, such as the
preheader, are left out. Every text is held to 4.5:1, large or not.
"""

from __future__ import annotations

import colorsys
import math
import re
import unicodedata
from dataclasses import dataclass
from itertools import chain

from digest.desk.css import Element, Styles, dark_rules, dark_styles, light_styles

AA = 4.5
_NAMES = (
    "aliceblue:f0f8ff antiquewhite:faebd7 aqua:00ffff aquamarine:7fffd4 azure:f0ffff "
    "beige:f5f5dc bisque:ffe4c4 black:000000 blanchedalmond:ffebcd blue:0000ff "
    "blueviolet:8a2be2 brown:a52a2a burlywood:deb887 cadetblue:5f9ea0 chartreuse:7fff00 "
    "chocolate:d2691e coral:ff7f50 cornflowerblue:6495ed cornsilk:fff8dc crimson:dc143c "
    "cyan:00ffff darkblue:00008b darkcyan:008b8b darkgoldenrod:b8860b darkgray:a9a9a9 "
    "darkgreen:006400 darkgrey:a9a9a9 darkkhaki:bdb76b darkmagenta:8b008b darkolivegreen:556b2f "
    "darkorange:ff8c00 darkorchid:9932cc darkred:8b0000 darksalmon:e9967a darkseagreen:8fbc8f "
    "darkslateblue:483d8b darkslategray:2f4f4f darkslategrey:2f4f4f darkturquoise:00ced1 "
    "darkviolet:9400d3 deeppink:ff1493 deepskyblue:00bfff dimgray:696969 dimgrey:696969 "
    "dodgerblue:1e90ff firebrick:b22222 floralwhite:fffaf0 forestgreen:228b22 fuchsia:ff00ff "
    "gainsboro:dcdcdc ghostwhite:f8f8ff gold:ffd700 goldenrod:daa520 gray:808080 green:008000 "
    "greenyellow:adff2f grey:808080 honeydew:f0fff0 hotpink:ff69b4 indianred:cd5c5c "
    "indigo:4b0082 ivory:fffff0 khaki:f0e68c lavender:e6e6fa lavenderblush:fff0f5 "
    "lawngreen:7cfc00 lemonchiffon:fffacd lightblue:add8e6 lightcoral:f08080 lightcyan:e0ffff "
    "lightgoldenrodyellow:fafad2 lightgray:d3d3d3 lightgreen:90ee90 lightgrey:d3d3d3 "
    "lightpink:ffb6c1 lightsalmon:ffa07a lightseagreen:20b2aa lightskyblue:87cefa "
    "lightslategray:778899 lightslategrey:778899 lightsteelblue:b0c4de lightyellow:ffffe0 "
    "lime:00ff00 limegreen:32cd32 linen:faf0e6 magenta:ff00ff maroon:800000 "
    "mediumaquamarine:66cdaa mediumblue:0000cd mediumorchid:ba55d3 mediumpurple:9370db "
    "mediumseagreen:3cb371 mediumslateblue:7b68ee mediumspringgreen:00fa9a "
    "mediumturquoise:48d1cc mediumvioletred:c71585 midnightblue:191970 mintcream:f5fffa "
    "mistyrose:ffe4e1 moccasin:ffe4b5 navajowhite:ffdead navy:000080 oldlace:fdf5e6 "
    "olive:808000 olivedrab:6b8e23 orange:ffa500 orangered:ff4500 orchid:da70d6 "
    "palegoldenrod:eee8aa palegreen:98fb98 paleturquoise:afeeee palevioletred:db7093 "
    "papayawhip:ffefd5 peachpuff:ffdab9 peru:cd853f pink:ffc0cb plum:dda0dd powderblue:b0e0e6 "
    "purple:800080 rebeccapurple:663399 red:ff0000 rosybrown:bc8f8f royalblue:4169e1 "
    "saddlebrown:8b4513 salmon:fa8072 sandybrown:f4a460 seagreen:2e8b57 seashell:fff5ee "
    "sienna:a0522d silver:c0c0c0 skyblue:87ceeb slateblue:6a5acd slategray:708090 "
    "slategrey:708090 snow:fffafa springgreen:00ff7f steelblue:4682b4 tan:d2b48c teal:008080 "
    "thistle:d8bfd8 tomato:ff6347 turquoise:40e0d0 violet:ee82ee wheat:f5deb3 white:ffffff "
    "whitesmoke:f5f5f5 yellow:ffff00 yellowgreen:9acd32 "
)
NAMED = dict(pair.split(":") for pair in "".join(_NAMES).split())
_HEX = re.compile(r"#([0-9a-f]{3,4}|[0-9a-f]{6}|[0-9a-f]{8})")
_FUNCTION = re.compile(r"(rgba?|hsla?)\(([^)]*)\)")
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)")
_UNSEEN = ("head", "title", "style", "script", "template")


@dataclass(frozen=True, slots=True)
class Colour:
    """An sRGB colour, channels 0-255, with its opacity (0-1)."""

    red: float
    green: float
    blue: float
    alpha: float = 1.0

    @property
    def hex(self) -> str:
        return "#" + "".join(f"{round(c):02x}" for c in (self.red, self.green, self.blue))

    @property
    def luminance(self) -> float:
        """WCAG relative luminance."""
        def linear(channel: float) -> float:
            c = channel / 255
            return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

        return (0.2126 * linear(self.red) + 0.7152 * linear(self.green)
                + 0.0722 * linear(self.blue))

    def over(self, back: Colour) -> Colour:
        """This colour composited over an opaque ``back``."""
        a = self.alpha
        return Colour(self.red * a + back.red * (1 - a), self.green * a + back.green * (1 - a),
                      self.blue * a + back.blue * (1 - a))


WHITE, BLACK, LINK = Colour(255, 255, 255), Colour(0, 0, 0), Colour(0, 0, 0xEE)


def _channels(args: str) -> list[tuple[float, bool]]:
    """The numbers of ``rgb(1, 2, 3 / 50%)``, each with whether it was a percentage."""
    found = []
    for part in re.split(r"[\s,/]+", args.strip()):
        match = _NUMBER.match(part)
        if match is None:
            return []
        found.append((float(match[0]), part.endswith("%")))
    return found


def _alpha(numbers: list[tuple[float, bool]]) -> float:
    if len(numbers) < 4:
        return 1.0
    value, percent = numbers[3]
    return min(max(value / 100 if percent else value, 0.0), 1.0)


def _function(kind: str, args: str) -> Colour | None:
    numbers = _channels(args)
    if len(numbers) not in (3, 4):
        return None
    if kind.startswith("rgb"):
        rgb = [min(max(v * 2.55 if pct else v, 0.0), 255.0) for v, pct in numbers[:3]]
        return Colour(rgb[0], rgb[1], rgb[2], _alpha(numbers))
    hue, saturation, lightness = (numbers[0][0] % 360) / 360, numbers[1][0], numbers[2][0]
    r, g, b = colorsys.hls_to_rgb(hue, min(lightness, 100) / 100, min(saturation, 100) / 100)
    return Colour(r * 255, g * 255, b * 255, alpha=_alpha(numbers))


def parse_colour(text: str | None) -> Colour | None:
    """``#rgb``, ``#rrggbb`` (with alpha too), ``rgb()``, ``rgba()``, ``hsl()``,
    ``hsla()``, a named colour or ``transparent``; None for anything else, such
    as ``inherit`` or ``currentColor``, which leave the colour to an ancestor."""
    value = (text or "").strip().lower()
    if value == "transparent":
        return Colour(0, 0, 0, 0.0)
    if value in NAMED:
        value = "#" + NAMED[value]
    if _HEX.fullmatch(value):
        digits = value[1:]
        if len(digits) <= 4:
            digits = "".join(d * 2 for d in digits)
        channels = [int(digits[i:i + 2], 16) for i in range(0, len(digits), 2)]
        alpha = channels[3] / 255 if len(channels) == 4 else 1.0
        return Colour(channels[0], channels[1], channels[2], alpha)
    match = _FUNCTION.fullmatch(value)
    return _function(match[1], match[2]) if match else None


def contrast(first: Colour, second: Colour) -> float:
    """The WCAG contrast ratio of two opaque colours, 1 to 21."""
    light, dark = sorted((first.luminance, second.luminance), reverse=True)
    return (light + 0.05) / (dark + 0.05)


@dataclass(frozen=True, slots=True)
class LowContrast:
    """Text whose colour on its background is below ``AA``."""

    palette: str  # "light" or "dark"
    ratio: float
    text: str
    foreground: Colour
    background: Colour

    def describe(self) -> str:
        # Rounded down, so a failing 4.47 never shows as the 4.5 it fails.
        shown = math.floor(self.ratio * 10) / 10
        return (f'contrast {shown}:1 for "{self.text}" ({self.foreground.hex} on '
                f"{self.background.hex}) in the {self.palette} palette; AA needs {AA}:1")


def _zero(value: str | None) -> bool:
    match = _NUMBER.match((value or "").strip())
    return match is not None and float(match[0]) == 0


def hides(element: Element, style: dict[str, str]) -> bool:
    """Whether this element's own style hides it, and so everything inside it."""
    overflow_hidden = style.get("overflow", "").strip().lower() == "hidden"
    return (style.get("display", "").strip().lower() == "none"
            or style.get("visibility", "").strip().lower() in ("hidden", "collapse")
            or _zero(style.get("opacity")) or _zero(style.get("font-size"))
            or (overflow_hidden and (_zero(style.get("max-height"))
                                     or _zero(style.get("height"))))
            or element.get("hidden") is not None)


def hidden(element: Element, styles: Styles) -> bool:
    """Whether the element is out of sight: hidden itself or inside a hidden one."""
    return any(hides(node, styles.get(node, {}))
               for node in chain([element], element.iterancestors()))


def own_text(element: Element) -> str:
    """The element's own text (not its children's), whitespace collapsed;
    empty when it has no visible character."""
    text = (element.text or "") + "".join(child.tail or "" for child in element)
    if not any(unicodedata.category(ch)[0] in "LNPS" for ch in text):
        return ""
    return " ".join(text.split())


def _foreground(element: Element, styles: Styles) -> Colour:
    for node in chain([element], element.iterancestors()):
        colour = parse_colour(styles.get(node, {}).get("color"))
        if colour is None and node.tag == "font":
            colour = parse_colour(node.get("color"))
        if colour is not None:
            return colour
        if node.tag == "a" and node.get("href") is not None:
            return LINK  # the browser's own link colour, which no ancestor's overrides
    return BLACK


def _background(element: Element, styles: Styles) -> Colour:
    layers: list[Colour] = []
    for node in chain([element], element.iterancestors()):
        declared = styles.get(node, {}).get("background-color")
        colour = parse_colour(declared if declared is not None else node.get("bgcolor"))
        if colour is not None and colour.alpha > 0:
            layers.append(colour)
            if colour.alpha >= 1:
                break
    result = WHITE
    for layer in reversed(layers):
        result = layer.over(result)
    return result


def _palette(root: Element, name: str, styles: Styles) -> list[LowContrast]:
    found = []
    for element in root.iter():
        if not isinstance(element.tag, str) or element.tag in _UNSEEN:
            continue
        text = own_text(element)
        if not text or any(a.tag in _UNSEEN for a in element.iterancestors()):
            continue
        if hidden(element, styles):
            continue
        colour = _foreground(element, styles)
        if colour.alpha == 0:
            continue  # transparent text is a hiding trick, not a colour
        back = _background(element, styles)
        front = colour.over(back)
        ratio = contrast(front, back)
        if ratio < AA:
            snippet = text if len(text) <= 40 else text[:40].rstrip() + "…"
            found.append(LowContrast(name, ratio, snippet, front, back))
    return found


def low_contrast(root: Element) -> list[LowContrast]:
    """Every distinct pair of colours with too little contrast, lowest first,
    each with the first text that uses it; light and dark palettes alike."""
    found = _palette(root, "light", light_styles(root))
    rules = dark_rules("\n".join(style.text or "" for style in root.iter("style")))
    if rules:
        found += _palette(root, "dark", dark_styles(root, rules))
    distinct: dict[tuple[str, str, str], LowContrast] = {}
    for item in found:
        distinct.setdefault((item.palette, item.foreground.hex, item.background.hex), item)
    return sorted(distinct.values(), key=lambda item: item.ratio)
