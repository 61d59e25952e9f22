package upload

import (
	"go/ast"
	"go/parser"
	"go/token"
	"strconv"
	"testing"
)

// TestReasonsTableComplete: every Reason constant of the package is in
// Reasons with a description, codes are distinct, and no verdict is made
// from a bare string (which would bypass the table).
func TestReasonsTableComplete(t *testing.T) {
	fset := token.NewFileSet()
	pkgs, err := parser.ParseDir(fset, ".", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	consts := map[Reason]bool{}
	for _, f := range pkgs["upload"].Files {
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.ValueSpec:
				if id, ok := n.Type.(*ast.Ident); ok && id.Name == "Reason" {
					for _, v := range n.Values {
						lit, ok := v.(*ast.BasicLit)
						if !ok {
							t.Errorf("%s: a Reason constant that is not a literal", fset.Position(v.Pos()))
							continue
						}
						s, _ := strconv.Unquote(lit.Value)
						consts[Reason(s)] = true
					}
				}
			case *ast.KeyValueExpr: // verdict{reason: "..."}
				if k, ok := n.Key.(*ast.Ident); ok && k.Name == "reason" {
					if _, bare := n.Value.(*ast.BasicLit); bare {
						t.Errorf("%s: reason given as a bare string", fset.Position(n.Pos()))
					}
				}
			case *ast.AssignStmt: // v.reason, v.detail = "...", ...
				for i, l := range n.Lhs {
					if sel, ok := l.(*ast.SelectorExpr); ok && sel.Sel.Name == "reason" && i < len(n.Rhs) {
						if _, bare := n.Rhs[i].(*ast.BasicLit); bare {
							t.Errorf("%s: reason assigned a bare string", fset.Position(n.Pos()))
						}
					}
				}
			}
			return true
		})
	}
	if len(consts) < 10 {
		t.Fatalf("found only %d Reason constants: %v", len(consts), consts)
	}
	for r := range consts {
		if Reasons[r] == "" {
			t.Errorf("reason %q is missing from Reasons", r)
		}
	}
	for r := range Reasons {
		if !consts[r] {
			t.Errorf("Reasons lists %q, which is no constant", r)
		}
	}
}
