from django import template

from ..html_preview import srcdoc

register = template.Library()

register.filter("srcdoc", srcdoc)
